package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LoadReport says what loading a set left out, so that nothing is skipped
// silently: SpamAssassin rules that cannot run here, by reason, and
// directives that are not about rules.
type LoadReport struct {
	Imported int            // SpamAssassin rules imported
	Disabled int            // of those, rules SpamAssassin does not run without network and Bayes (score 0, tflags net or learn): kept as never hitting
	Skipped  map[string]int // reason → SpamAssassin rules skipped
	Skips    []Skip         // each skipped rule
	Ignored  map[string]int // directive → lines ignored (lang, priority, whitelists...)
	// Unused counts the rules of the set, imported or not, whose value
	// nothing reads (helpers no reported rule uses): they are never
	// tested.
	Unused int
}

// Skip is one SpamAssassin rule left out.
type Skip struct {
	File   string
	Line   int
	Rule   string
	Reason string
	Detail string
}

// String summarises the report in one line per reason.
func (r LoadReport) String() string {
	var b strings.Builder
	skipped := 0
	for _, n := range r.Skipped {
		skipped += n
	}
	fmt.Fprintf(&b, "imported %d SpamAssassin rules (%d of them disabled in score set 0), skipped %d", r.Imported, r.Disabled, skipped)
	if r.Unused > 0 {
		fmt.Fprintf(&b, "; %d rules unused (helpers no reported rule reads: never tested)", r.Unused)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Skipped)) {
		fmt.Fprintf(&b, "\n  skipped %5d  %s", r.Skipped[k], k)
	}
	return b.String()
}

func (r *LoadReport) skip(s Skip) {
	if r.Skipped == nil {
		r.Skipped = map[string]int{}
	}
	r.Skipped[s.Reason]++
	r.Skips = append(r.Skips, s)
}

func (r *LoadReport) ignore(directive string) {
	if r.Ignored == nil {
		r.Ignored = map[string]int{}
	}
	r.Ignored[directive]++
}

// saRule is a SpamAssassin rule while its files are read: later
// definitions of a name replace earlier ones, as in SpamAssassin.
type saRule struct {
	Rule
	skip     *Skip
	kindText string
}

type saParser struct {
	rules   map[string]*saRule
	order   []string
	tags    map[string]string
	scores  map[string]float64
	descr   map[string]string
	tflags  map[string]string
	replace map[string]bool // rules whose <TAG>s are replaced
	report  *LoadReport
	thresh  *Thresholds
	conds   []bool
	conf    *saConf
}

// pseudo-headers SpamAssassin computes from its own relay parsing.
var saPseudo = regexp.MustCompile(`^(ALL-TRUSTED|ALL-UNTRUSTED|ALL-INTERNAL|ALL-EXTERNAL|X-Spam-DCC|X-Spam-Status|X-Spam-Flag|X-Spam-Level)`)

func newSAParser(report *LoadReport) *saParser {
	return &saParser{
		rules: map[string]*saRule{}, tags: map[string]string{}, scores: map[string]float64{},
		descr: map[string]string{}, tflags: map[string]string{}, replace: map[string]bool{}, report: report,
		conf: &saConf{},
	}
}

func (p *saParser) active() bool {
	for _, c := range p.conds {
		if !c {
			return false
		}
	}
	return true
}

// parseFile reads one .cf file. Files are read in order into one parser so
// that a later file can override an earlier one, as SpamAssassin's do.
func (p *saParser) parseFile(name string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	p.conds = p.conds[:0]
	for sc.Scan() {
		line++
		text := saStripComment(sc.Text())
		if text == "" {
			continue
		}
		directive, rest, _ := strings.Cut(text, " ")
		if i := strings.IndexByte(directive, '\t'); i >= 0 {
			directive, rest = text[:i], text[i+1:]
		}
		rest = strings.TrimSpace(rest)
		switch directive {
		case "ifplugin":
			p.conds = append(p.conds, true)
			continue
		case "if":
			// Version checks and plugin tests are taken as true; a negated
			// test ("if !plugin(...)") guards a fallback for a missing
			// plugin, which we do not want twice.
			p.conds = append(p.conds, !strings.HasPrefix(strings.TrimPrefix(rest, "("), "!"))
			continue
		case "else":
			if n := len(p.conds); n > 0 {
				p.conds[n-1] = !p.conds[n-1]
			}
			continue
		case "endif":
			if n := len(p.conds); n > 0 {
				p.conds = p.conds[:n-1]
			}
			continue
		}
		if !p.active() {
			continue
		}
		p.directive(name, line, directive, rest)
	}
	if err := sc.Err(); err != nil {
		return &LoadError{File: name, Line: line + 1, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	return nil
}

func saStripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] != '\\') {
			s = s[:i]
			break
		}
	}
	return strings.TrimSpace(strings.ReplaceAll(s, `\#`, "#"))
}

func (p *saParser) directive(file string, line int, directive, rest string) {
	name, arg, _ := strings.Cut(rest, " ")
	if i := strings.IndexByte(name, '\t'); i >= 0 {
		name, arg = rest[:i], rest[i+1:]
	}
	arg = strings.TrimSpace(arg)
	switch directive {
	case "header", "body", "rawbody", "full", "uri", "meta", "mimeheader":
		r := &saRule{Rule: Rule{Name: name, File: file, Line: line, sa: true}, kindText: directive}
		p.define(r, arg)
		if _, ok := p.rules[name]; !ok {
			p.order = append(p.order, name)
		}
		p.rules[name] = r
	case "score":
		f := strings.Fields(arg)
		if len(f) == 0 {
			p.report.ignore("score without value")
			return
		}
		v, err := strconv.ParseFloat(strings.Trim(f[0], "()"), 64)
		if err != nil {
			p.report.ignore("score with bad value")
			return
		}
		p.scores[name] = v
	case "describe":
		p.descr[name] = arg
	case "tflags":
		p.tflags[name] = arg
	case "replace_tag":
		p.tags[name] = arg
	case "replace_rules":
		// It may come before or after the rules it names.
		for _, n := range strings.Fields(rest) {
			p.replace[n] = true
		}
	case "trusted_networks", "internal_networks":
		list, set := &p.conf.trusted, &p.conf.trustedSet
		if directive == "internal_networks" {
			list, set = &p.conf.internal, &p.conf.internalSet
		}
		*set = true
		if err := addNets(list, rest); err != nil {
			p.report.ignore(directive + " with " + err.Error())
		}
	case "clear_trusted_networks":
		p.conf.trusted, p.conf.trustedSet = nil, false
	case "clear_internal_networks":
		p.conf.internal, p.conf.internalSet = nil, false
	case "enlist_addrlist":
		if !p.conf.enlistAddrList(rest) {
			p.report.ignore("enlist_addrlist without a list name")
		}
	case "welcomelist_bounce_relays", "whitelist_bounce_relays":
		p.conf.enlistAddrList("(" + bounceRelays + ") " + rest)
	case "freemail_domains":
		p.conf.freemail = append(p.conf.freemail, strings.Fields(strings.ToLower(rest))...)
	case "body_part_scan_size", "rawbody_part_scan_size":
		v, err := strconv.Atoi(name)
		if err != nil || v < 0 {
			p.report.ignore(directive + " with bad value")
			return
		}
		if directive == "body_part_scan_size" {
			p.conf.bodyScan = &v
		} else {
			p.conf.rawScan = &v
		}
	case "required_score", "required_hits":
		if v, err := strconv.ParseFloat(name, 64); err == nil {
			p.thresh = &Thresholds{AddHeader: v, Reject: 3 * v}
		}
	default:
		p.report.ignore(directive)
	}
}

// define fills in a rule from its definition, or marks why it is skipped.
func (p *saParser) define(r *saRule, arg string) {
	skip := func(reason, detail string) {
		r.skip = &Skip{File: r.File, Line: r.Line, Rule: r.Name, Reason: reason, Detail: detail}
	}
	if !ruleName.MatchString(r.Name) {
		skip(ReasonSyntax, "bad rule name")
		return
	}
	if call, ok := strings.CutPrefix(arg, "eval:"); ok {
		name, args, err := parseEvalCall(call)
		if err != nil {
			skip(ReasonSyntax, err.Error())
			return
		}
		mk, ok := saEvals[name]
		if !ok {
			skip(ReasonEval, arg)
			return
		}
		fn, err := mk(p.conf, args)
		if err != nil {
			skip(ReasonEval, arg+": "+err.Error())
			return
		}
		r.Kind, r.evalFn = kindEval, fn
		return
	}
	switch r.kindText {
	case "mimeheader":
		fn, err := saMIMEHeader(arg)
		if err != nil {
			s, ok := err.(*errSkip)
			if !ok {
				s = &errSkip{ReasonSyntax, err.Error()}
			}
			skip(s.reason, s.detail)
			return
		}
		r.Kind, r.evalFn = kindEval, fn
	case "meta":
		r.Kind, r.Expr = Meta, arg
	case "body", "rawbody", "full", "uri":
		r.Kind = Kind(r.kindText)
		r.Regex = arg // translated after tags are replaced
	case "header":
		r.Kind = Header
		if h, ok := strings.CutPrefix(arg, "exists:"); ok {
			r.Field, r.Test = strings.TrimSpace(h), Exists
			if saPseudo.MatchString(r.Field) {
				skip(ReasonPseudo, r.Field)
			}
			return
		}
		i := strings.Index(arg, "=~")
		j := strings.Index(arg, "!~")
		if j >= 0 && (i < 0 || j < i) {
			i, r.Negate = j, true
		}
		if i < 0 {
			skip(ReasonSyntax, arg)
			return
		}
		r.Field = strings.TrimSpace(arg[:i])
		r.Regex = strings.TrimSpace(arg[i+2:])
		if strings.Contains(r.Field, "|") || strings.ContainsAny(r.Field, " \t") {
			skip(ReasonUnsupported, "header "+r.Field)
			return
		}
		if saPseudo.MatchString(r.Field) {
			skip(ReasonPseudo, r.Field)
		}
		for _, m := range strings.Split(r.Field, ":")[1:] {
			if !saHeaderMods[m] {
				skip(ReasonUnsupported, "header modifier :"+m)
			}
		}
	}
}

// finish translates the rules read, in definition order, into sp.
func (p *saParser) finish(sp *spec) {
	skipped := map[string]bool{}
	var rules []*saRule
	for _, name := range p.order {
		r := p.rules[name]
		if p.disabled(name) {
			// SpamAssassin never runs it, so it never hits, whatever it
			// tests: keep it as false for the meta rules that use it.
			r.skip = nil
			r.Rule = Rule{Name: r.Name, File: r.File, Line: r.Line, Kind: Meta, Expr: "0", sa: true}
			p.report.Disabled++
		}
		if r.skip == nil && r.Kind != Meta && r.Kind != kindEval && r.Test == Match {
			p.translate(r)
		}
		if r.skip != nil {
			skipped[name] = true
			p.report.skip(*r.skip)
			continue
		}
		rules = append(rules, r)
	}
	// A meta rule that uses a skipped or undefined rule cannot mean what
	// it says; SpamAssassin disables it too. Repeat until nothing changes:
	// skipping one meta can strand another.
	for changed := true; changed; {
		changed = false
		for _, r := range rules {
			if r.Kind != Meta || skipped[r.Name] {
				continue
			}
			n, err := parseMeta(r.Expr)
			if err != nil {
				skipped[r.Name] = true
				p.report.skip(Skip{File: r.File, Line: r.Line, Rule: r.Name, Reason: ReasonSyntax, Detail: err.Error()})
				changed = true
				continue
			}
			n.names(func(d *metaNode) {
				if skipped[r.Name] {
					return
				}
				if _, ok := p.rules[d.name]; !ok || skipped[d.name] {
					skipped[r.Name] = true
					p.report.skip(Skip{File: r.File, Line: r.Line, Rule: r.Name, Reason: ReasonMetaDep, Detail: d.name})
					changed = true
				}
			})
		}
	}
	for _, r := range rules {
		if skipped[r.Name] {
			continue
		}
		r.Score = p.score(r.Name)
		r.noSubject = r.Kind == Body && saNoSubject.MatchString(p.tflags[r.Name])
		r.Description = p.descr[r.Name]
		// SpamAssassin does not report a rule scored 0; it may still
		// feed meta rules.
		r.quiet = r.Score == 0
		p.report.Imported++
		sp.rules = append(sp.rules, r.Rule)
	}
	if p.thresh != nil {
		sp.thresholds = p.thresh
	}
}

// score is a rule's score in SpamAssassin's score set 0 (no Bayes, no
// network tests). A rule without a score line gets 1, a T_ rule 0.01, and
// a nice rule the negative of that (Conf/Parser.pm, fix_tests); a __ rule
// is never scored.
func (p *saParser) score(name string) float64 {
	if strings.HasPrefix(name, "__") {
		return 0
	}
	if v, ok := p.scores[name]; ok {
		return v
	}
	v := 1.0
	if strings.HasPrefix(name, "T_") {
		v = 0.01
	}
	if saNice.MatchString(p.tflags[name]) {
		v = -v
	}
	return v
}

var (
	saNice      = regexp.MustCompile(`\bnice\b`)
	saNetLearn  = regexp.MustCompile(`\b(?:net|learn)\b`)
	saNoSubject = regexp.MustCompile(`\bnosubject\b`)
)

// disabled reports whether SpamAssassin skips the rule in score set 0: a
// score of 0 (Plugin::Check runs only scored rules), or a network or
// Bayes test (tflags net, learn), which that set leaves out.
func (p *saParser) disabled(name string) bool {
	if v, ok := p.scores[name]; ok && v == 0 {
		return true
	}
	return saNetLearn.MatchString(p.tflags[name])
}

var saTag = regexp.MustCompile(`<([A-Z0-9_]+)>`)

func (p *saParser) translate(r *saRule) {
	src := r.Regex
	if p.replace[r.Name] {
		src = saTag.ReplaceAllStringFunc(src, func(t string) string {
			if v, ok := p.tags[t[1:len(t)-1]]; ok {
				return v
			}
			return t
		})
	}
	pr, rest, err := parsePerlRegexAny(src)
	if err != nil {
		s, _ := err.(*errSkip)
		r.skip = &Skip{File: r.File, Line: r.Line, Rule: r.Name, Reason: s.reason, Detail: s.detail}
		return
	}
	r.Regex, r.backtrack, r.bytes, r.compiled = pr.pattern, pr.backtrack, pr.bytes, pr.re
	if max := (Limits{}).withDefaults().MaxRegexBytes; len(r.Regex) > max {
		// A whole set must not fail to load for one rule.
		r.skip = &Skip{File: r.File, Line: r.Line, Rule: r.Name, Reason: ReasonTooLong,
			Detail: fmt.Sprintf("%d bytes, over the %d-byte default limit", len(r.Regex), max)}
		return
	}
	rest = strings.TrimSpace(rest)
	if r.Kind == Header {
		// [if-unset: VALUE] gives the value tested when the header is
		// missing; without it SpamAssassin tests the empty string.
		unset := ""
		if v, ok := strings.CutPrefix(rest, "[if-unset:"); ok {
			unset = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "]"))
		}
		r.IfUnset = &unset
	}
}

// parseCF reads SpamAssassin files into sp.
func parseCF(files []namedData, sp *spec) error {
	p := newSAParser(&sp.report)
	for _, f := range files {
		if err := p.parseFile(f.name, f.data); err != nil {
			return err
		}
	}
	p.finish(sp)
	sp.saConf = p.conf
	return nil
}

type namedData struct {
	name string
	data []byte
}

// perlDollar gives "$" outside a character class Perl's meaning for RE2:
// without /m it matches at the end or before a final newline, as RE2's
// does not ("(?:\n?\z)"; a yes/no match may consume the newline). Header
// values end in "\n", so /foo$/ must match "foo\n". With /m, RE2's "$"
// already matches before every newline.
func perlDollar(body string, multiline bool) string {
	if multiline || !strings.Contains(body, "$") {
		return body
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\' && i+1 < len(body):
			b.WriteByte(c)
			b.WriteByte(body[i+1])
			i++
			continue
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			// A ']' first in the class is a literal.
			if i+1 < len(body) && body[i+1] == '^' {
				b.WriteString("[^")
				i++
			} else {
				b.WriteByte('[')
			}
			if i+1 < len(body) && body[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		case c == '$':
			b.WriteString(`(?:\n?\z)`)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// reFlagPrefix finds the flag groups a translated pattern starts with.
var reFlagPrefix = regexp.MustCompile(`^(?:\(\?[a-z]+\))*`)

var reCountedRepeat = regexp.MustCompile(`(^|[^\\])\{(\d+)(?:,\d*)?\}`)

// saLoosenCounts replaces each counted repeat {n}, {n,} or {n,m} of a
// pattern by "+" (n > 0) or "*": a pattern every match of the original
// matches too.
func saLoosenCounts(p string) string {
	return reCountedRepeat.ReplaceAllStringFunc(p, func(m string) string {
		s := reCountedRepeat.FindStringSubmatch(m)
		if strings.TrimLeft(s[2], "0") == "" {
			return s[1] + "*"
		}
		return s[1] + "+"
	})
}
