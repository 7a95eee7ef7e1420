package rules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/dlclark/regexp2"

	"github.com/h2non/filetype"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules/internal/literal"
)

// Evaluation is what a set found in one message.
type Evaluation struct {
	Symbols []filter.Symbol // the rules that hit, in set order
	Score   float64
	Action  filter.Action // the set's thresholds applied to Score
}

// Has reports whether the rule name hit.
func (e *Evaluation) Has(name string) bool {
	for _, s := range e.Symbols {
		if s.Name == name {
			return true
		}
	}
	return false
}

// TruncatedSymbol is added (score 0) when a text was longer than
// Limits.MaxScanBytes, or could not be decoded whole, and rules saw only
// its start.
const TruncatedSymbol = "RULES_TRUNCATED"

type scratch struct {
	values   []float64
	tested   []bool
	lastLine []int32 // body rules: 1 + the line last tested
	winLo    []int32 // windowed body rules: the window last tested
	winHi    []int32
	stack    []float64 // meta programs' (metaeval.go)
	dirty    []uint64  // meta rules to evaluate, by position in Set.metas
	state    []uint8   // rule id → settled, pending or dirtyMeta (metaeval.go)
	rng      uint64    // xorshift state for timeSample
}

// Evaluate runs the set over a message. It fails only when ctx ends.
func (s *Set) Evaluate(ctx context.Context, m *filter.Message) (*Evaluation, error) {
	sc, _ := s.scratch.Get().(*scratch)
	if sc == nil || len(sc.values) != len(s.rules) {
		n := len(s.rules)
		sc = &scratch{values: make([]float64, n), tested: make([]bool, n), lastLine: make([]int32, n), winLo: make([]int32, n), winHi: make([]int32, n),
			state: make([]uint8, n), rng: rand.Uint64() | 1}
	}
	copy(sc.values, s.metaPlan.base) // 0 but for meta rules that hit when nothing else does
	clear(sc.tested)
	clear(sc.lastLine)
	clear(sc.winLo)
	clear(sc.winHi)
	clear(sc.state)
	defer s.scratch.Put(sc)

	v := &view{m: m, set: s}
	defer v.releaseSAVals()
	defer v.releaseRendered()
	run := func(id int) {
		c := s.rules[id]
		w, start := sc.startTimer(c.stats)
		hit := c.test(v)
		sc.stopTimer(c.stats, w, start)
		if hit {
			c.stats.Hits.Add(1)
			sc.values[c.id] = 1
		}
	}
	test := func(c *crule) {
		if sc.tested[c.id] {
			return
		}
		sc.tested[c.id] = true
		if c.lazy {
			sc.state[c.id] = pending // evalMetas tests it if a meta needs it
			return
		}
		run(c.id)
	}
	for scp := scope(0); scp < nScopes; scp++ {
		plan := &s.scans[scp]
		if len(plan.rules) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if scp == scopeBody || scp == scopeRawBody {
			s.evalLines(v, plan, sc, scp)
			continue
		}
		for _, c := range plan.always {
			test(c)
		}
		if plan.matcher == nil {
			continue
		}
		text := v.text(scp)
		if literal.Hazard(text) {
			for _, c := range plan.keyed {
				test(c)
			}
			continue
		}
		plan.matcher.MatchString(text, func(id int) {
			for _, c := range plan.byKey[id] {
				test(c)
			}
		})
	}
	if err := ctx.Err(); err != nil { // metas test the helpers they reach
		return nil, fmt.Errorf("rules: %w", err)
	}
	s.evalMetas(sc, run)
	ev := &Evaluation{}
	for _, c := range s.rules {
		if sc.values[c.id] == 0 {
			continue
		}
		if c.meta != nil && !c.unused && sc.state[c.id] == settled {
			c.stats.Hits.Add(1)
		}
		if c.emit {
			ev.Symbols = append(ev.Symbols, filter.Symbol{Name: c.Name, Score: c.Score, Detail: c.Description})
			ev.Score += c.Score
		}
	}
	if len(v.truncated) > 0 {
		ev.Symbols = append(ev.Symbols, filter.Symbol{Name: TruncatedSymbol, Detail: strings.Join(v.truncated, "; ")})
	}
	ev.Action = s.thresholds.Action(ev.Score)
	return ev, nil
}

// clockBase is what nanos counts from.
var clockBase = time.Now()

// nanos is a monotonic clock for the rule statistics: one clock read,
// where time.Now reads the wall clock as well.
func nanos() int64 { return int64(time.Since(clockBase)) }

// timeSample: one rule test in timeSample (at random) is timed, and its
// time counts timeSample times. A message has some 700 tests, most of
// them shorter than the two clock reads that would time them (4 % of a
// small message's rule time). The sum stays an unbiased estimate of the
// time spent: a rule's first test is always timed, at weight 1, and each
// later one with probability 1/timeSample at weight timeSample; over the
// thousands of tests a slow rule has, its estimate is within a few
// percent. Evaluations and Hits stay exact.
const timeSample = 8

// startTimer decides whether the coming test of st's rule is timed and
// returns its weight (0: not timed) and start time.
func (sc *scratch) startTimer(st *RuleStats) (w, start int64) {
	x := sc.rng // xorshift64
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	sc.rng = x
	switch {
	case st.Evaluations.Load() == 0:
		w = 1
	case x%timeSample == 0:
		w = timeSample
	default:
		return 0, 0
	}
	return w, nanos()
}

// stopTimer counts the test startTimer began.
func (sc *scratch) stopTimer(st *RuleStats, w, start int64) {
	if w != 0 {
		st.Nanos.Add(w * (nanos() - start))
	}
	st.Evaluations.Add(1)
}

// evalLines runs the body or raw-body rules of a plan: rules without keys
// over every line, rules with keys only over the lines where a key occurs
// (see lines.go).
func (s *Set) evalLines(v *view, plan *scanPlan, sc *scratch, scp scope) {
	text := v.text(scp)
	lb := lineBufs.Get().(*lineBuf)
	defer lb.put()
	starts := lb.starts(text)
	line := func(k int) string {
		end := len(text)
		if k+1 < len(starts) {
			end = starts[k+1] - 1
		}
		return text[starts[k]:end]
	}
	var lines []string
	allLines := func() []string {
		if lines == nil {
			lines = lb.lines[:0]
			for k := range starts {
				lines = append(lines, line(k))
			}
			lb.lines = lines
		}
		return lines
	}
	run := func(c *crule, vals []string) {
		w, start := sc.startTimer(c.stats)
		hit := c.matchAny(vals)
		sc.stopTimer(c.stats, w, start)
		if hit {
			c.stats.Hits.Add(1)
			sc.values[c.id] = 1
		}
	}
	var present byteSet // the bytes of text, once a rule has a byte check
	for g := range plan.groups {
		plan.groups[g].run(allLines(), v.subjectLine, text, &present, sc)
	}
	for i, c := range plan.always {
		if plan.grouped != nil && plan.grouped[i] {
			continue
		}
		if c.need != nil && c.plainRegex() && c.Test == Match {
			if present.empty() {
				present = textBytes(text)
			}
			if !c.need.set.intersects(&present) {
				continue // no line can match (bytecheck.go)
			}
		}
		if j := plan.same[i]; j >= 0 {
			// The same regex over the same lines: the same answer.
			c.stats.Evaluations.Add(1)
			if sc.values[plan.always[j].id] != 0 {
				c.stats.Hits.Add(1)
				sc.values[c.id] = 1
			}
			continue
		}
		if c.noSubject && v.subjectLine && len(allLines()) > 0 {
			run(c, allLines()[1:])
			continue
		}
		run(c, allLines())
	}
	if plan.matcher == nil {
		return
	}
	if literal.Hazard(text) {
		for _, c := range plan.keyed {
			run(c, allLines())
		}
		return
	}
	k := 0
	one := make([]string, 1)
	plan.matcher.Each(text, func(id, end int) {
		for k+1 < len(starts) && starts[k+1] < end {
			k++
		}
		lo, hi := starts[k], len(text)
		if k+1 < len(starts) {
			hi = starts[k+1] - 1
		}
		s := end - plan.keyLen[id]
		for _, c := range plan.byKey[id] {
			if sc.values[c.id] != 0 || sc.lastLine[c.id] == int32(k+1) {
				continue
			}
			if c.lead != nil && s >= lo && end <= hi {
				// Only the starts before this occurrence (lead.go).
				from := max(lo, end-c.lead.span)
				if sc.winLo[c.id] == int32(k+1) {
					from = max(from, int(sc.winHi[c.id]))
				} else if !c.linePossible(line(k)) {
					sc.lastLine[c.id] = int32(k + 1)
					continue
				}
				if from > s {
					continue
				}
				sc.winLo[c.id], sc.winHi[c.id] = int32(k+1), int32(s+1)
				w, start := sc.startTimer(c.stats)
				hit := c.leadMatch(text, lo, hi, from)
				if hit && c.bt != nil {
					// The superset matched: the line goes to the backtracker.
					sc.lastLine[c.id] = int32(k + 1)
					hit = c.matchRegex(line(k))
				}
				sc.stopTimer(c.stats, w, start)
				if hit {
					c.stats.Hits.Add(1)
					sc.values[c.id] = 1
				}
				continue
			}
			if c.window > 0 && s >= lo && end <= hi {
				// Only the bytes around this occurrence (window.go).
				ws, we := window(text, lo, hi, s, end, c.window)
				if int32(ws) >= sc.winLo[c.id] && int32(we) <= sc.winHi[c.id] {
					continue
				}
				sc.winLo[c.id], sc.winHi[c.id] = int32(ws), int32(we)
				one[0] = text[ws:we]
				run(c, one)
				continue
			}
			sc.lastLine[c.id] = int32(k + 1)
			one[0] = line(k)
			run(c, one)
		}
	})
}

// lineBuf holds evalLines' line index and line list, reused from message
// to message: per message they are 24 bytes a line, allocated twice.
type lineBuf struct {
	start []int
	lines []string
}

var lineBufs = sync.Pool{New: func() any { return new(lineBuf) }}

// starts is the line index of text, in the reused buffer.
func (lb *lineBuf) starts(text string) []int {
	lb.start = appendLineStarts(lb.start[:0], text)
	return lb.start
}

// put gives the buffers back, dropping the strings the list points to so
// that the pool keeps no message alive.
func (lb *lineBuf) put() {
	clear(lb.lines)
	lb.lines = lb.lines[:0]
	if cap(lb.start) <= maxPooledText {
		lineBufs.Put(lb)
	}
}

func (c *crule) test(v *view) bool {
	var vals []string
	switch c.Kind {
	case kindEval:
		return c.evalFn(v)
	case Header:
		vals = v.headerValues(c.hdr)
		if len(vals) == 0 && c.IfUnset != nil && c.Test == Match {
			vals = []string{*c.IfUnset}
		}
	case Full:
		vals = []string{v.text(scopeFull)}
	case URI:
		vals = v.uriValues(c.Field)
	case Attachment:
		vals = v.attachmentValues(c.Field)
	case Envelope:
		vals = v.envelopeValues(c.Field)
	}
	switch c.Test {
	case Exists:
		return len(vals) > 0
	case Absent:
		return len(vals) == 0
	}
	return c.matchAny(vals)
}

// matchAny tests a rule's values; with nothing to test a rule does not
// hit, negated or not ("HELO is not a FQDN" says nothing without a HELO).
func (c *crule) matchAny(vals []string) bool {
	if len(vals) == 0 {
		return false
	}
	found := false
	for _, x := range vals {
		if c.matchOne(x) {
			found = true
			break
		}
	}
	return found != c.Negate
}

// matchRegex tests one value against the rule's regex, whichever engine
// runs it.
func (c *crule) matchRegex(x string) bool {
	if c.tail != nil && !c.tail.possible(x) {
		return false
	}
	if c.need != nil && !c.need.possible(x) {
		return false
	}
	if c.run != nil && !c.run.possible(x) {
		return false
	}
	if c.bt != nil {
		// The backtracking engine is slow: most values fail the RE2
		// superset first.
		if c.btPre != nil && !regexMatch(c.preD, c.btPre, x, c.bytes) {
			return false
		}
		if c.bytes {
			x = latin1Runes(x)
		}
		return btMatch(c.bt, x)
	}
	return regexMatch(c.reD, c.re, x, c.bytes)
}

// runeBufs holds the rune buffers the backtracking engine runs over:
// regexp2's MatchString converts every value to a new []rune (four bytes
// a character), which for a full-text rule is four times the message per
// rule. A buffer is used for one match and given back; regexp2 keeps no
// reference it reads after the match returns. It is a free list, not a
// sync.Pool: a collection empties a pool, and a 3 MB message needs a
// 12 MB buffer again after each one. It keeps at most a few buffers of at
// most maxPooledRunes.
var runeBufs = make(chan *[]rune, 4)

// maxPooledRunes caps the buffers kept for reuse (16 MiB of runes).
const maxPooledRunes = 4 << 20

func btMatch(re *regexp2.Regexp, x string) bool {
	var bp *[]rune
	select {
	case bp = <-runeBufs:
	default:
		bp = new([]rune)
	}
	r := (*bp)[:0]
	if cap(r) < len(x) {
		r = make([]rune, 0, len(x)) // at most one rune a byte
	}
	for _, c := range x {
		r = append(r, c)
	}
	ok, err := re.MatchRunes(r)
	if cap(r) <= maxPooledRunes {
		*bp = r[:0]
		select {
		case runeBufs <- bp:
		default:
		}
	}
	return ok && err == nil
}

// linePossible reports whether the rule's byte and run checks let its
// regex match x.
func (c *crule) linePossible(x string) bool {
	return (c.tail == nil || c.tail.possible(x)) && (c.need == nil || c.need.possible(x)) && (c.run == nil || c.run.possible(x))
}

// matchOne tests one value against every constraint the rule gives.
func (c *crule) matchOne(x string) bool {
	if c.exact != nil {
		if !c.matchExact(x) {
			return false
		}
	} else if (c.re != nil || c.bt != nil) && !c.matchRegex(x) {
		return false
	}
	if len(c.Domains) > 0 {
		d := strings.ToLower(x)
		if c.Kind == Envelope {
			d = filter.Domain(x)
		}
		if !inDomains(d, c.Domains) {
			return false
		}
	}
	if len(c.cidrs) > 0 {
		a, err := netip.ParseAddr(x)
		if err != nil {
			return false
		}
		a = a.Unmap()
		in := false
		for _, p := range c.cidrs {
			if p.Contains(a) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

func inDomains(d string, list []string) bool {
	d = strings.TrimSuffix(d, ".")
	for _, x := range list {
		if d == x || strings.HasSuffix(d, "."+x) {
			return true
		}
	}
	return false
}

// view is the message as the rules see it, each text built once per
// Evaluate and only when a rule needs it.
type view struct {
	m         *filter.Message
	set       *Set
	fieldsOK  bool
	fields    []hfield
	texts     [nScopes]*string
	links     *uriSet
	atts      map[string][]string
	truncated []string

	// What SpamAssassin's eval functions share, computed on first use.
	subjectLine bool                // the body text starts with the Subject
	saValues    map[string][]string // SpamAssassin header field → the string its rules test (fields without a number)
	saVals      *saValTable         // the same by field number (saheader.go)
	mime        *mimeStats
	flags       *parseFlags
	html        *[]*htmlResult
	rcvd        *relayInfo
	dates       *dateInfo
	sax         saExtra // more of the same, kept in SpamAssassin's files
}

type hfield struct {
	key  string // lower case
	raw  string // unfolded, not decoded
	text string // RFC 2047 decoded

	// As SpamAssassin sees the field (saheader.go).
	name   string // as written
	saRaw  string // the raw value: everything after the colon, folding kept, LF line ends
	saText string // unfolded, trimmed, decoded, without the final newline

	// The addresses and display names in text and in saRaw (addrBoth),
	// parsed on first use: several rules and evals ask for From:addr and
	// From:name.
	addrs, names     []string
	saAddrs, saNames []string
	parsed, saParsed bool
}

func (v *view) headerFields() []hfield {
	if v.fieldsOK {
		return v.fields
	}
	v.fieldsOK = true
	h := v.m.Header()
	f := h.Fields()
	v.fields = make([]hfield, 0, f.Len())
	// The lower-case keys and SpamAssassin's raw values share one buffer,
	// only ever appended to: the strings in it never change, and a buffer
	// outgrown stays with the strings made before. It is sized to the
	// header as written (where the body starts), which holds every name
	// and value.
	var size int64
	if parts, _ := v.m.Parts(); len(parts) > 0 {
		_, size = parts[0].Offset()
	}
	arena := make([]byte, 0, min(size, 1<<20)+int64(f.Len()))
	for f.Next() {
		raw := unfold(f.Value())
		text, err := f.Text()
		if err != nil {
			text = raw
		}
		var name, saRaw, key string
		arena, name, saRaw = appendSARawField(arena, f)
		arena, key = appendLower(arena, f.Key())
		v.fields = append(v.fields, hfield{key: key, raw: raw, text: unfold(text),
			name: name, saRaw: saRaw, saText: saUnfold(text)})
	}
	return v.fields
}

// appendLower is strings.ToLower(s), appended to dst when s is ASCII and
// not already in lower case.
func appendLower(dst []byte, s string) ([]byte, string) {
	upper := -1
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return dst, strings.ToLower(s) // not a field name RFC 5322 allows
		}
		if upper < 0 && 'A' <= s[i] && s[i] <= 'Z' {
			upper = i
		}
	}
	if upper < 0 {
		return dst, s
	}
	start := len(dst)
	dst = append(dst, s...)
	for j := start + upper; j < len(dst); j++ {
		if c := dst[j]; 'A' <= c && c <= 'Z' {
			dst[j] = c + 'a' - 'A'
		}
	}
	return dst, bstr(dst[start:])
}

func unfold(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.TrimSpace(unfolder.Replace(s))
}

var unfolder = strings.NewReplacer("\n ", " ", "\n\t", " ", "\n", " ")

// headerSpec is a parsed header rule field: a name with an optional
// SpamAssassin modifier (:raw, :addr, :name).
type headerSpec struct {
	names []string // lower case; nil for all headers
	mod   string
	sa    *saHeaderSpec // a SpamAssassin rule's field (saheader.go)
}

func parseHeaderSpec(field string, sa bool) headerSpec {
	if sa {
		return parseSAHeaderSpec(field)
	}
	name, mod, _ := strings.Cut(field, ":")
	var hs headerSpec
	hs.mod = strings.ToLower(mod)
	switch strings.ToLower(name) {
	case "", "all":
	case "tocc":
		hs.names = []string{"to", "cc"}
	case "messageid":
		hs.names = []string{"message-id", "resent-message-id", "x-message-id"}
	default:
		hs.names = []string{strings.ToLower(name)}
	}
	return hs
}

func (v *view) headerValues(hs headerSpec) []string {
	if hs.sa != nil {
		return v.saHeaderValue(hs.sa)
	}
	fields := v.headerFields()
	if hs.names == nil {
		var b strings.Builder
		for _, f := range fields {
			b.WriteString(f.key)
			b.WriteString(": ")
			if hs.mod == "raw" {
				b.WriteString(f.raw)
			} else {
				b.WriteString(f.text)
			}
			b.WriteByte('\n')
		}
		if b.Len() == 0 {
			return nil
		}
		return []string{b.String()}
	}
	var out []string
	for i := range fields {
		f := &fields[i]
		for _, n := range hs.names {
			if f.key != n {
				continue
			}
			switch hs.mod {
			case "raw":
				out = append(out, f.raw)
			case "addr", "name":
				if !f.parsed {
					f.addrs, f.names = addrList(f.text)
					f.parsed = true
				}
				if hs.mod == "addr" {
					out = append(out, f.addrs...)
				} else {
					out = append(out, f.names...)
				}
			default:
				out = append(out, f.text)
			}
		}
	}
	return out
}

// addrParts returns the addresses or the display names of an address list.
func addrParts(s string, addr bool) []string {
	addrs, names := addrList(s)
	if addr {
		return addrs
	}
	return names
}

// addrBoth returns the addresses and the display names of an address
// list, parsed once.
func addrBoth(s string) (addrs, names []string) {
	list, err := mail.ParseAddressList(s)
	if err != nil {
		// Spam headers are often malformed: fall back to what lies
		// between angle brackets, or the whole value.
		if i, j := strings.IndexByte(s, '<'), strings.LastIndexByte(s, '>'); i >= 0 && j > i {
			return []string{s[i+1 : j]}, []string{strings.Trim(strings.TrimSpace(s[:i]), `"`)}
		}
		return []string{strings.TrimSpace(s)}, []string{""}
	}
	addrs, names = make([]string, len(list)), make([]string, len(list))
	for i, a := range list {
		addrs[i], names[i] = a.Address, a.Name
	}
	return addrs, names
}

func (v *view) truncate(what string, s string) string {
	max := v.set.limits.MaxScanBytes
	if len(s) <= max {
		return s
	}
	v.truncated = append(v.truncated, fmt.Sprintf("%s cut at %d bytes", what, max))
	return s[:max]
}

// text returns the haystack of a prefiltered scope.
func (v *view) text(sc scope) string {
	if p := v.texts[sc]; p != nil {
		return *p
	}
	var s string
	switch sc {
	case scopeHeader:
		var b strings.Builder
		for _, f := range v.headerFields() {
			b.WriteString(f.key)
			b.WriteString(": ")
			b.WriteString(f.text)
			if f.raw != f.text {
				b.WriteString("\n ") // SpamAssassin's raw values start with the space
				b.WriteString(f.raw)
			}
			// What SpamAssassin's rules see, so that the prefilter finds
			// their literals.
			if f.saText != f.text {
				b.WriteString("\n")
				b.WriteString(f.saText)
			}
			if r := saRawValue(f.saRaw); r != " "+f.raw+"\n" {
				b.WriteString("\n")
				b.WriteString(r)
			}
			b.WriteByte('\n')
		}
		if v.set.pseudoText {
			for _, rs := range v.relays().str {
				b.WriteString(rs)
				b.WriteByte('\n')
			}
			if a, ok := v.envelopeFrom(); ok {
				b.WriteString(a)
				b.WriteByte('\n')
			}
		}
		s = b.String()
	case scopeBody:
		s = v.truncate("body", v.bodyText(true))
	case scopeRawBody:
		s = v.truncate("rawbody", v.bodyText(false))
	case scopeFull:
		s = v.fullText()
	case scopeURI:
		u := v.uris()
		s = strings.Join(u.urls, "\n") + "\n" + strings.Join(u.hosts, "\n")
	}
	v.texts[sc] = &s
	return s
}

// bodyText joins the text parts a reader sees. Rendered (body rules), it
// starts with the Subject, HTML becomes text, and the lines of a paragraph
// are joined so that a phrase broken across lines still matches, as in
// SpamAssassin.
//
// The text is built in a pooled buffer and stays there: the string is
// the buffer's bytes, valid while the view lives, and the buffer goes
// back to the pool when Evaluate ends (releaseRendered). Nothing the
// view returns keeps a piece of it: symbols carry names, scores and
// descriptions only.
func (v *view) bodyText(render bool) string {
	max := v.set.limits.MaxScanBytes + 1
	parts, _ := v.m.Parts()
	if !render {
		if t, ok := v.onlyText(parts); ok {
			return t
		}
	}
	bp, hp := getBuf(), getBuf()
	defer putBuf(hp)
	b := *bp
	if render {
		for _, f := range v.headerFields() {
			if f.key == "subject" {
				b = append(b, f.text...)
				b = append(b, '\n')
				v.subjectLine = true
				break
			}
		}
	}
	for _, p := range parts {
		if !p.IsText() || p.Disposition == "attachment" || len(b) >= max {
			continue
		}
		t, err := p.Text()
		if err != nil && !errors.Is(err, filter.ErrNotText) {
			v.truncated = append(v.truncated, fmt.Sprintf("part %s: %v", p.Path, err))
		}
		switch {
		case !render:
			b = append(b, v.set.cutRawPart(t)...)
			b = append(b, '\n')
		case p.ContentType == "text/html":
			// Block elements end paragraphs in HTML, not blank lines:
			// every rendered line is a paragraph of its own.
			r := v.set.cutBodyPart(v.renderedBody(p, t, max, hp))
			for line := range strings.Lines(r) {
				if line = strings.TrimSpace(line); line != "" {
					b = appendBodySpaces(b, line)
					b = append(b, '\n')
				}
			}
		default:
			b = paragraphs(b, v.set.cutBodyPart(t))
		}
	}
	*bp = b
	i := 0
	if render {
		i = 1
	}
	v.sax.bodyBufs[i] = bp // text builds each scope once
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// onlyText returns the raw body text without a copy when it is one text
// part that ends with a line end: joining would only add an empty last
// line, and rules test lines (lineStarts), where one empty line more or
// less changes nothing.
func (v *view) onlyText(parts []*filter.Part) (string, bool) {
	var only *filter.Part
	for _, p := range parts {
		if !p.IsText() || p.Disposition == "attachment" {
			continue
		}
		if only != nil {
			return "", false
		}
		only = p
	}
	if only == nil {
		return "", false
	}
	t, err := only.Text()
	if t = v.set.cutRawPart(t); err != nil || !strings.HasSuffix(t, "\n") {
		return "", false
	}
	return t, true
}

// textBufs are the scratch buffers texts are built in; see getBuf.
var textBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledText caps the buffers kept for reuse.
const maxPooledText = 8 << 20

// getBuf returns an empty scratch buffer. The caller gives it back with
// putBuf before it returns, and keeps nothing that points into it.
func getBuf() *[]byte {
	bp := textBufs.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

func putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledText {
		textBufs.Put(bp)
	}
}

// maxParagraph caps a joined paragraph: a text without blank lines would
// otherwise become one line as long as the message, and every body regex
// would scan all of it.
const maxParagraph = 2048

// paragraphs appends t with the lines of each paragraph joined by spaces
// and paragraphs on lines of their own.
func paragraphs(b []byte, t string) []byte {
	para := 0 // bytes in the current paragraph; 0 when none is open
	for line := range strings.Lines(t) {
		line = strings.TrimSpace(line)
		if line == "" || (para > 0 && para+len(line) > maxParagraph) {
			if para > 0 {
				b = append(b, '\n')
			}
			para = 0
			if line == "" {
				continue
			}
		}
		if para > 0 {
			b = append(b, ' ')
			para++
		}
		n := len(b)
		b = appendBodySpaces(b, line)
		para += len(b) - n
	}
	if para > 0 {
		b = append(b, '\n')
	}
	return b
}

// appendBodySpaces appends line with every run of white space in it, the
// Unicode kinds too (a no-break space, an em space), made one space:
// SpamAssassin renders the body so (s/\s+/ /g on its characters), and
// a rule's " " must match where the mail had two spaces, a tab or a
// no-break space. line has no white space at either end.
func appendBodySpaces(b []byte, line string) []byte {
	start := 0
	for i := 0; i < len(line); {
		c := line[i]
		if !bodySpaceByte[c] {
			i++
			continue
		}
		if c == ' ' && i+1 < len(line) && !bodySpaceByte[line[i+1]] {
			i += 2 // one plain space between words: nothing to change
			continue
		}
		j := bodySpaceRun(line, i)
		if j == i {
			_, w := utf8.DecodeRuneInString(line[i:])
			i += w
			continue
		}
		if c == ' ' && j == i+1 {
			i = j // one plain space: nothing to change
			continue
		}
		b = append(b, line[start:i]...)
		b = append(b, ' ')
		start, i = j, j
	}
	return append(b, line[start:]...)
}

// bodySpaceRun returns the end of the run of white space at line[i:] (i
// when there is none).
func bodySpaceRun(line string, i int) int {
	for i < len(line) {
		if c := line[i]; c < utf8.RuneSelf {
			if !asciiSpaceByte[c] {
				return i
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(line[i:])
		if !unicode.IsSpace(r) {
			return i
		}
		i += w
	}
	return i
}

var asciiSpaceByte = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// bodySpaceByte are the bytes appendBodySpaces stops at: ASCII white
// space and the bytes of non-ASCII characters, some of which are white
// space.
var bodySpaceByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= utf8.RuneSelf || asciiSpaceByte[c]
	}
	return t
}()

func (v *view) fullText() string {
	max := int64(v.set.limits.MaxScanBytes)
	b, err := v.rawSection(0, v.m.Size(), max)
	if err != nil {
		v.truncated = append(v.truncated, fmt.Sprintf("full: %v", err))
	}
	if v.m.Size() > max {
		v.truncated = append(v.truncated, fmt.Sprintf("full cut at %d bytes", max))
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// rawSection returns up to max of the n raw bytes at off, for reading
// only: the message's own bytes when it is in memory (filter.Message.Bytes),
// else read into a new buffer of that size. Either way the bytes never
// change while the view lives, so strings over them need no copy; nothing
// made from them may outlive the view.
func (v *view) rawSection(off, n, max int64) ([]byte, error) {
	n = min(n, max)
	if raw, ok := v.m.Bytes(); ok {
		end := min(off+n, int64(len(raw)))
		off = min(off, end)
		return raw[off:end:end], nil
	}
	b := make([]byte, n)
	k, err := v.m.ReaderAt().ReadAt(b, off)
	if err == io.EOF {
		err = nil // a message shorter than its size reads as what it has
	}
	return b[:k], err
}

func (v *view) attachmentValues(field string) []string {
	if v.atts == nil {
		v.atts = map[string][]string{}
	}
	if vals, ok := v.atts[field]; ok {
		return vals
	}
	var vals []string
	for _, p := range v.m.Attachments() {
		switch field {
		case "", "name":
			vals = append(vals, p.Names...)
		case "content-type":
			vals = append(vals, p.ContentType)
		case "type":
			vals = append(vals, v.detectType(p))
		}
	}
	v.atts[field] = vals
	return vals
}

// detectType names an attachment's type from its first bytes, with the
// Config's detector (the archive package's, in a gateway) or h2non/filetype.
func (v *view) detectType(p *filter.Part) string {
	head := make([]byte, 512)
	n, err := io.ReadFull(p.Open(), head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		v.truncated = append(v.truncated, fmt.Sprintf("part %s: %v", p.Path, err))
	}
	head = head[:n]
	if v.set.detect != nil {
		return v.set.detect(head, p.Filename())
	}
	t, err := filetype.Match(head)
	if err != nil || t == filetype.Unknown {
		return "unknown"
	}
	return t.Extension
}

func (v *view) envelopeValues(field string) []string {
	e := v.m.Envelope
	switch field {
	case "from":
		return []string{e.MailFrom} // the null sender is the value ""
	case "rcpt":
		return e.RcptTo
	case "helo":
		if e.Helo != "" {
			return []string{e.Helo}
		}
	case "ip":
		if e.ClientIP.IsValid() {
			return []string{e.ClientIP.Unmap().String()}
		}
	case "auth":
		if e.AuthUser != "" {
			return []string{e.AuthUser}
		}
	}
	return nil
}
