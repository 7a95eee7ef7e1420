package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dlclark/regexp2"

	"github.com/portcullis-mail/portcullis/rules/internal/ac"
	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
	"github.com/portcullis-mail/portcullis/rules/internal/literal"
)

// scope is a text scanned by one prefilter pass.
type scope int

const (
	scopeHeader scope = iota
	scopeBody
	scopeRawBody
	scopeFull
	scopeURI
	scopeOther // attachment and envelope values: few and short, always tested
	nScopes
)

func kindScope(k Kind) scope {
	switch k {
	case Header:
		return scopeHeader
	case Body:
		return scopeBody
	case RawBody:
		return scopeRawBody
	case Full:
		return scopeFull
	case URI:
		return scopeURI
	}
	return scopeOther
}

// Set is a compiled rule set: immutable, safe for concurrent use, swapped
// whole by an Engine.
type Set struct {
	rules      []*crule
	byName     map[string]*crule
	thresholds Thresholds
	scans      [nScopes]scanPlan
	metas      []*crule // in evaluation order: dependencies first
	metaPlan   metaPlan // how they are evaluated (metaeval.go)
	// pseudoText: the header text the prefilter scans holds
	// SpamAssassin's pseudo-headers too (the relays, the envelope sender),
	// for the rules that test them.
	pseudoText bool
	corpus     []Sample
	report     LoadReport
	limits     Limits
	detect     func(head []byte, name string) string
	prefilter  bool
	needType   bool
	saConf     *saConf
	scan       scanSizes
	scratch    sync.Pool
}

type scanPlan struct {
	rules   []*crule // every rule of the scope
	always  []*crule // rules with no usable key: run on every message
	keyed   []*crule // the others
	matcher *ac.Matcher
	byKey   [][]*crule  // pattern id → rules keyed on it
	keyLen  []int       // pattern id → its length in bytes
	same    []int       // always[i] gives the answer of always[same[i]] (an identical regex), or -1
	groups  []ruleGroup // body and raw body: always rules run together (group.go)
	grouped []bool      // always[i] is in a group
}

// crule is a compiled rule.
type crule struct {
	Rule
	id    int
	re    *regexp.Regexp
	bt    *regexp2.Regexp   // instead of re, for a Rule with backtrack
	btPre *regexp.Regexp    // for bt: an RE2 regex every match of bt matches, tried first (keysPattern)
	exact func([]rune) bool // for bt: what it matches, evaluated in Go (saexact.go), or nil
	// exactText, when not nil, answers for exact on the text itself
	// (latin1 for a byte rule), without reading it all as runes.
	exactText func(x string, latin1 bool) bool
	reD       *dfa.DFA // re's DFA, or nil (dfa.go)
	preD      *dfa.DFA // btPre's
	cidrs     []netip.Prefix
	hdr       headerSpec
	meta      *metaNode
	emit      bool // hits become symbols (names starting "__" are helpers)
	unused    bool // nothing reads the rule's value: never tested (markUnused)
	// lazy: a helper only meta rules read, tested when one needs it
	// (metaeval.go); never with Set.prefilter false.
	lazy bool
	// window, for a keyed body or raw-body rule, is the most bytes a match
	// spans; 0 when unbounded. See window.go.
	window int
	lead   *lead      // for a keyed body or raw-body rule, the starts its matches have; see lead.go
	run    *runCheck  // a run of bytes every match holds, or nil; see runcheck.go
	need   *byteCheck // bytes of which every match holds one, or nil; see bytecheck.go
	tail   *tailCheck // how every match ends the value or a line of it, or nil; see tailcheck.go
	stats  *RuleStats
	// keysMemo is keys' answer once keysDone: the build asks more than once.
	keysMemo []string
	keysDone bool
}

// RuleStats counts what one rule cost and found. Counts survive reloads of
// an Engine while the rule keeps its name.
type RuleStats struct {
	Evaluations atomic.Uint64 // times the rule was tested (after the prefilter; a meta rule, when an input changed: metaeval.go)
	Hits        atomic.Uint64
	Nanos       atomic.Int64 // time spent testing it, estimated from a sample of the tests (timeSample)
}

type statsTable struct {
	mu sync.Mutex
	m  map[string]*RuleStats
}

func (t *statsTable) get(name string) *RuleStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*RuleStats{}
	}
	s, ok := t.m[name]
	if !ok {
		s = &RuleStats{}
		t.m[name] = s
	}
	return s
}

// spec is everything read from the rule files of one set, before compiling.
type spec struct {
	rules      []Rule
	scores     []scoreOverride
	thresholds *Thresholds
	corpus     []Sample
	report     LoadReport
	saConf     *saConf // the SpamAssassin configuration beyond rules, or nil
}

type scoreOverride struct {
	name  string
	score float64
	file  string
	line  int
}

type compileOptions struct {
	limits      Limits
	detect      func(head []byte, name string) string
	noPrefilter bool
	noDFA       bool // Go's regexp only: for the tests that compare
	noGroups    bool // every always rule runs alone (group.go): for the tests that compare
	stats       *statsTable
}

const maxErrors = 20

// compile builds a Set. Every fault is reported (up to maxErrors), each
// naming its file and line.
func compile(sp *spec, o compileOptions) (*Set, error) {
	o.limits = o.limits.withDefaults()
	if o.stats == nil {
		o.stats = &statsTable{}
	}
	if len(sp.rules) > o.limits.MaxRules {
		r := sp.rules[o.limits.MaxRules]
		return nil, ruleErr(&r, fmt.Errorf("%w: more than %d rules", ErrLimit, o.limits.MaxRules))
	}
	s := &Set{
		byName:     make(map[string]*crule, len(sp.rules)),
		thresholds: DefaultThresholds(),
		corpus:     sp.corpus,
		report:     sp.report,
		limits:     o.limits,
		detect:     o.detect,
		prefilter:  !o.noPrefilter,
		saConf:     sp.saConf,
		scan:       resolveScanSizes(o.limits, sp.saConf),
	}
	if sp.thresholds != nil {
		s.thresholds = *sp.thresholds
	}
	var errs []error
	fail := func(err error) bool {
		errs = append(errs, err)
		return len(errs) >= maxErrors
	}
	for i := range sp.rules {
		r := &sp.rules[i]
		if prev, ok := s.byName[r.Name]; ok {
			if fail(ruleErr(r, fmt.Errorf("%w (first defined at %s:%d)", ErrDuplicate, prev.File, prev.Line))) {
				break
			}
			continue
		}
		c, err := compileRule(r, o.limits)
		if err != nil {
			if fail(ruleErr(r, err)) {
				break
			}
			continue
		}
		c.id = len(s.rules)
		c.stats = o.stats.get(r.Name)
		if o.noPrefilter {
			c.need = nil // every regex on every value, to check the checks
		}
		s.rules = append(s.rules, c)
		s.byName[r.Name] = c
	}
	if len(errs) == 0 {
		for _, o := range sp.scores {
			if c, ok := s.byName[o.name]; ok {
				c.Score = o.score
			} else {
				errs = append(errs, &LoadError{File: o.file, Line: o.line, Rule: o.name, Err: fmt.Errorf("%w: score for a rule not defined", ErrUnknown)})
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, s.orderMetas()...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, c := range s.rules {
		c.emit = !strings.HasPrefix(c.Name, "__") && !c.quiet
		if c.Kind == Attachment && c.Field == "type" {
			s.needType = true
		}
		if c.sa && (c.bt != nil || c.bytes) && (c.Kind == Body || c.Kind == RawBody || c.Kind == Full) && c.keys() == nil {
			// A backtracking or byte regex with no literal for the
			// prefilter would run over every line of every message, at
			// many times the cost of the rest of the set: keep it as never
			// hitting, and say so.
			c.meta, c.bt, c.btPre, c.re = &metaNode{op: "num"}, nil, nil, nil
			s.report.Imported--
			s.report.skip(Skip{File: c.File, Line: c.Line, Rule: c.Name, Reason: ReasonUnkeyed, Detail: c.Regex})
		}
	}
	s.markUnused()
	for _, c := range s.rules {
		if c.Kind == Header && c.hdr.sa != nil && (c.hdr.sa.envFrom || c.hdr.sa.relays != "") && !c.unused {
			s.pseudoText = true
		}
	}
	s.planMetas()
	if err := s.buildScans(); err != nil {
		return nil, err
	}
	if !o.noDFA {
		s.useDFAs()
		if !o.noGroups {
			s.buildGroups()
		}
	}
	return s, nil
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$`)

func compileRule(r *Rule, lim Limits) (*crule, error) {
	c := &crule{Rule: *r}
	if !ruleName.MatchString(r.Name) {
		return nil, fmt.Errorf("%w: name must be 1 to 128 letters, digits, _ . -", ErrInvalid)
	}
	if r.Kind == kindEval && r.evalFn != nil {
		return c, nil
	}
	if !slices.Contains(kinds, r.Kind) {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalid, r.Kind)
	}
	if r.Kind == Meta {
		if len(r.Expr) > lim.MaxRegexBytes {
			return nil, fmt.Errorf("%w: meta expression of %d bytes (limit %d)", ErrLimit, len(r.Expr), lim.MaxRegexBytes)
		}
		n, err := parseMeta(r.Expr)
		if err != nil {
			return nil, err
		}
		c.meta = n
		return c, nil
	}
	if r.Regex != "" && r.Literal != "" {
		return nil, fmt.Errorf("%w: both regex and literal given", ErrInvalid)
	}
	pattern := r.Regex
	if r.Literal != "" {
		pattern = regexp.QuoteMeta(r.Literal)
	}
	if len(pattern) > lim.MaxRegexBytes {
		return nil, fmt.Errorf("%w: regex of %d bytes (limit %d)", ErrLimit, len(pattern), lim.MaxRegexBytes)
	}
	switch r.Test {
	case Match:
		if pattern == "" && len(r.CIDR) == 0 && len(r.Domains) == 0 {
			return nil, fmt.Errorf("%w: nothing to match: give regex, literal, cidr, domains or test", ErrInvalid)
		}
	case Exists, Absent:
		if pattern != "" {
			return nil, fmt.Errorf("%w: test %q takes no regex", ErrInvalid, r.Test)
		}
	default:
		return nil, fmt.Errorf("%w: unknown test %q", ErrInvalid, r.Test)
	}
	if err := checkField(r); err != nil {
		return nil, err
	}
	if pattern != "" && r.backtrack {
		if r.NoCase {
			pattern = "(?i)" + pattern
		}
		bt, err := compileBacktrack(pattern)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		c.bt = bt
		if r.Kind == Header || r.Kind == Full || r.Kind == URI {
			c.exact = exactFor(pattern, bt) // saexact.go
			c.exactText = saExactText[pattern]
		}
		if p := keysPattern(pattern); p != "" {
			c.btPre, _ = regexp.Compile(p)
		}
		if c.btPre != nil {
			c.need = newByteCheck(c.btPre.String(), r.bytes)
			c.run = newRunCheck(c.btPre.String())
		}
	} else if pattern != "" {
		if r.NoCase {
			pattern = "(?i)" + pattern
		}
		re := r.compiled
		if re == nil || re.String() != pattern {
			var err error
			if re, err = regexp.Compile(pattern); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
		c.re = re
		c.need = newByteCheck(re.String(), r.bytes)
		c.run = newRunCheck(re.String())
		c.tail = newTailCheck(re.String(), r.bytes)
	}
	for _, p := range r.CIDR {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(p))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(p))
			if aerr != nil {
				return nil, fmt.Errorf("%w: bad CIDR %q", ErrInvalid, p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		c.cidrs = append(c.cidrs, pfx.Masked())
	}
	c.Domains = nil
	for _, d := range r.Domains {
		c.Domains = append(c.Domains, strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), "."))
	}
	if r.Kind == Header {
		c.hdr = parseHeaderSpec(r.Field, r.sa)
	}
	return c, nil
}

func checkField(r *Rule) error {
	var allowed []string
	switch r.Kind {
	case URI:
		allowed = []string{"", "url", "host", "domain"}
	case Attachment:
		allowed = []string{"", "name", "type", "content-type"}
	case Envelope:
		allowed = []string{"from", "rcpt", "helo", "ip", "auth"}
	case Body, RawBody, Full:
		allowed = []string{""}
	default:
		return nil
	}
	if !slices.Contains(allowed, r.Field) {
		return fmt.Errorf("%w: field %q not one of %q for kind %s", ErrInvalid, r.Field, allowed, r.Kind)
	}
	if len(r.CIDR) > 0 && !(r.Kind == Envelope && r.Field == "ip") {
		return fmt.Errorf("%w: cidr is for envelope ip rules", ErrInvalid)
	}
	return nil
}

// orderMetas resolves the names meta rules use and orders them so that
// every meta rule is evaluated after the rules it uses; a cycle is refused
// with its path.
func (s *Set) orderMetas() []error {
	var errs []error
	for _, c := range s.rules {
		if c.meta == nil {
			continue
		}
		c.meta.names(func(n *metaNode) {
			d, ok := s.byName[n.name]
			if !ok {
				errs = append(errs, ruleErr(&c.Rule, fmt.Errorf("%w: meta uses %s, which is not defined", ErrUnknown, n.name)))
				return
			}
			n.id = d.id
		})
	}
	if len(errs) > 0 {
		return errs
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(s.rules))
	var path []*crule
	var visit func(c *crule) error
	visit = func(c *crule) error {
		switch color[c.id] {
		case black:
			return nil
		case grey:
			var names []string
			start := slices.Index(path, c)
			for _, p := range path[start:] {
				names = append(names, p.Name)
			}
			names = append(names, c.Name)
			return ruleErr(&c.Rule, fmt.Errorf("%w: %s", ErrCycle, strings.Join(names, " -> ")))
		}
		color[c.id] = grey
		path = append(path, c)
		var err error
		c.meta.names(func(n *metaNode) {
			if d := s.rules[n.id]; err == nil && d.meta != nil {
				err = visit(d)
			}
		})
		path = path[:len(path)-1]
		if err != nil {
			return err
		}
		color[c.id] = black
		s.metas = append(s.metas, c)
		return nil
	}
	for _, c := range s.rules {
		if c.meta != nil {
			if err := visit(c); err != nil {
				return []error{err}
			}
		}
	}
	return nil
}

// buildScans builds one literal prefilter per text scope.
func (s *Set) buildScans() error {
	for sc := scope(0); sc < nScopes; sc++ {
		plan := &s.scans[sc]
		index := map[string]int{}
		var patterns []string
		for _, c := range s.rules {
			if c.meta != nil || kindScope(c.Kind) != sc || c.unused {
				continue
			}
			plan.rules = append(plan.rules, c)
			keys := c.keys()
			if sc == scopeOther || !s.prefilter || keys == nil {
				plan.always = append(plan.always, c)
				continue
			}
			plan.keyed = append(plan.keyed, c)
			if (sc == scopeBody || sc == scopeRawBody) && c.plainRegex() {
				c.window = windowLen(c.re.String())
			}
			if (sc == scopeBody || sc == scopeRawBody) && c.window == 0 {
				keys = c.leadFor(keys)
			}
			for _, k := range keys {
				id, ok := index[k]
				if !ok {
					id = len(patterns)
					index[k] = id
					patterns = append(patterns, k)
					plan.byKey = append(plan.byKey, nil)
					plan.keyLen = append(plan.keyLen, len(k))
				}
				plan.byKey[id] = append(plan.byKey[id], c)
			}
		}
		if sc == scopeBody || sc == scopeRawBody {
			plan.same = sameRegex(plan.always)
		}
		if len(patterns) == 0 {
			continue
		}
		m, err := ac.New(patterns)
		if err != nil {
			return &LoadError{Err: fmt.Errorf("%w: %v", ErrLimit, err)}
		}
		plan.matcher = m
	}
	return nil
}

// markUnused marks the rules whose value nothing reads: not reported (a
// "__" helper, or a SpamAssassin rule scored 0) and used by no meta rule
// that is reported or used in turn. Testing them could change no
// verdict, score or symbol, so the scans leave them out; SpamAssassin's
// files have some 500, helpers of rules that are disabled or scored 0.
// Their statistics show no evaluations, and LoadReport.Unused counts them.
func (s *Set) markUnused() {
	live := make([]bool, len(s.rules))
	var stack []int
	for _, c := range s.rules {
		if c.emit {
			live[c.id] = true
			stack = append(stack, c.id)
		}
	}
	for len(stack) > 0 {
		c := s.rules[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		c.meta.names(func(n *metaNode) {
			if !live[n.id] {
				live[n.id] = true
				stack = append(stack, n.id)
			}
		})
	}
	s.report.Unused = 0
	for _, c := range s.rules {
		c.unused = !live[c.id]
		c.lazy = s.prefilter && !c.unused && !c.emit && c.meta == nil
		if c.unused {
			s.report.Unused++
		}
	}
}

// plainRegex reports whether the rule's answer for a value is whether its
// regex matches it: no negation, domains or CIDRs.
func (c *crule) plainRegex() bool {
	return c.re != nil && !c.Negate && len(c.Domains) == 0 && len(c.cidrs) == 0
}

// sameRegex returns, for each rule of list, the index of the first rule of
// list whose answer is the same on any values (the same plain regex), or
// -1 when it is the first.
func sameRegex(list []*crule) []int {
	first := map[string]int{}
	out := make([]int, len(list))
	for i, c := range list {
		out[i] = -1
		if !c.plainRegex() || c.Test != Match || c.noSubject {
			continue
		}
		key := c.re.String()
		if c.bytes {
			key = "bytes:" + key // the same pattern read as Latin-1 is another regex
		}
		if j, ok := first[key]; ok {
			out[i] = j
			continue
		}
		first[key] = i
	}
	return out
}

// keys returns the strings of which a text must contain one for the rule
// to hit, or nil when the rule must always run (negated rules, existence
// tests, and regexes without a usable literal).
func (c *crule) keys() []string {
	if !c.keysDone {
		c.keysDone, c.keysMemo = true, c.requiredKeys()
	}
	return c.keysMemo
}

func (c *crule) requiredKeys() []string {
	if c.re == nil && c.bt == nil || c.Negate || c.Test != Match || c.noSubject {
		return nil
	}
	if c.Kind == Header && (c.hdr.mod == "addr" || c.hdr.mod == "name") {
		// Parsed addresses and names (quoted pairs undone) are not
		// substrings of the header text the prefilter scans.
		return nil
	}
	if c.Kind == Header && c.IfUnset != nil && c.matchRegex(*c.IfUnset) {
		// A missing header is tested as IfUnset, which is not in the
		// text; only when IfUnset cannot hit may the rule be skipped.
		return nil
	}
	pattern := ""
	if c.re != nil {
		pattern = c.re.String()
	} else if pattern = keysPattern(c.bt.String()); pattern == "" {
		return nil
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	keys := literal.Required(re)
	if c.bytes {
		// The pattern's runes stand for bytes; the text scanned is bytes.
		// The rarest keys may not survive that; the longest may.
		if keys = bytesKeys(keys); keys == nil {
			keys = bytesKeys(literal.RequiredLongest(re))
		}
	}
	if c.Kind == Header && c.hdr.sa != nil {
		// SpamAssassin joins repeated fields into one string: a literal
		// that spans a line end may span two fields, which the header
		// text the prefilter scans keeps apart.
		for _, k := range keys {
			if strings.ContainsAny(k, "\r\n") {
				return nil
			}
		}
	}
	return keys
}

// bytesKeys turns the keys of a byte rule's pattern into the bytes they
// stand for, or nil when one of them is no use as a key.
func bytesKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		b, ok := fromLatin1(k)
		if !ok || len(b) < 4 && strings.ContainsFunc(b, func(r rune) bool { return r >= 0x80 }) {
			// Two or three high bytes are one or two accented letters, on
			// most lines of most non-English mail.
			return nil
		}
		out[i] = b
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Thresholds returns the set's thresholds.
func (s *Set) Thresholds() Thresholds { return s.thresholds }

// Len returns the number of rules in the set.
func (s *Set) Len() int { return len(s.rules) }

// Report returns what loading the set skipped or ignored.
func (s *Set) Report() LoadReport { return s.report }

// Corpus returns the regression corpus the set's files carry.
func (s *Set) Corpus() []Sample { return s.corpus }

// Rules returns the set's rules with their final scores, in load order.
func (s *Set) Rules() []Rule {
	out := make([]Rule, len(s.rules))
	for i, c := range s.rules {
		out[i] = c.Rule
	}
	return out
}

// PrefilterStats tells how many rules each prefilter pass covers and how
// many must run on every message.
func (s *Set) PrefilterStats() (keyed, always int) {
	for _, p := range s.scans {
		keyed += len(p.rules) - len(p.always)
		always += len(p.always)
	}
	return keyed, always
}
