package rules

import (
	"strings"
	"unicode"

	"github.com/dlclark/regexp2"
)

// A few of SpamAssassin's backtracking regexes cost more than the rest of
// a small message's rules together: back-references tried from every
// start over the whole header or message. For those, an exact Go
// evaluation stands in for the backtracking engine: the same answer for
// every input on which regexp2 answers within its time limit (where it
// times out the rule does not hit; the Go version answers). Each is
// checked against regexp2 by a differential test on generated inputs and
// the repository's mail (saexact_test.go). They are chosen by the
// pattern, as the importer compiled it, never by the rule's name: a
// changed regex falls back to regexp2.
//
// The patterns run as compileBacktrack compiles them: \s is an ASCII
// space (asciiSpace), \d an ASCII digit, their escapes the complements, "." with (?s) any rune, ^ and $ with (?m) at the
// text's ends and next to "\n" (not "\r"); the text is read as runes, an
// invalid byte as U+FFFD, as btMatch converts it.
var saExact = map[string]func([]rune) bool{
	// __FROM_NAME_IN_MSG: a two-word From display name that is a whole
	// line within 2,048 characters after it.
	`(?sm)^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)`: fromNameInMsg,

	// __TO_EQ_FROM_1 and _2, __SUBJ_HAS_FROM_1, __SUBJ_HAS_TO_1: an
	// address of one header line found again in a later one.
	`(?ism)\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: (?:[^\n]{0,80}<)?\1[>,\s\n]`: hdrPair{
		a: "\nfrom: ", b: "to: ", lines: 100, angle: true, tail: ">,"}.match,
	`(?ism)\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From: (?:[^\n]{0,80}<)?\1[>,\s\n]`: hdrPair{
		a: "\nto: ", b: "from: ", lines: 100, angle: true, tail: ">,"}.match,
	`(?ism)\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*Subject: [^\n]{0,100}\1[>,:\s\n]`: hdrPair{
		a: "\nfrom: ", b: "subject: ", lines: 100, tail: ">,:"}.match,
	`(?ism)\nTo: (?:[^\n<]{0,80}<)?([^\n\s>,]+)>?\n+(?:[^\n]{1,200}\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]`: hdrPair{
		a: "\nto: ", b: "subject: ", capComma: true, lines: 200, notAlnum: true}.match,
	// __TO_EQ_FROM_USR_1, _2, _NN_1, _NN_2: the local part of one
	// address in the other line.
	`(?ism)\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]+)\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1[\@>,\s\n]`:             hdrUser{a: "\nfrom:", b: "to:"}.match,
	`(?ism)\nTo:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]+)\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*From:\s+(?:[^\n]{0,80}<)?\1[\@>,\s\n]`:             hdrUser{a: "\nto:", b: "from:"}.match,
	`(?ism)\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]`: hdrUser{a: "\nfrom:", b: "to:", digits: true}.match,
	`(?ism)\nTo:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*From:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]`: hdrUser{a: "\nto:", b: "from:", digits: true}.match,
	// __TO_EQ_FROM_DOM_1: the From domain in a To address.
	`(?ism)\nFrom: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: [^\n]+@\1[>,\s\n]`: hdrPair{
		a: "\nfrom: ", b: "to: ", lines: 100, at: true, tail: ">,"}.match,
}

// saPrecheck holds necessary conditions for backtracking regexes that
// have no exact evaluation: regexp2 runs only where one holds, on the
// same runes.
var saPrecheck = map[string]func([]rune) bool{
	// __RAND_HEADER: a field named letters-letters whose value starts
	// with a digit, and whose name is not one of the excluded.
	`(?ism)^(?!Accept-Language|Authentication-Results|Content-|DomainKey-Signature|DKIM-|List-|MIME-|Received-SPF|Return-Path|Thread-|User-Agent|Tracking-Code)(?:[a-z]{4,}-[a-z]{3,}|[a-z]{3,}-[a-z]{4,}):\s+\d(?=\S{6,}\s*$)[\da-f]*(?:[-.]\w+)*\s*$`: randHeaderPossible,
	// HK_RANDOM_FROM and HK_RANDOM_ENVFROM: five consonants, five vowels
	// or a letter or two four times over, somewhere.
	`(?mi)^(?!(?:mail|bounce)[_.-]|[^@]*(?:[+=^~#-]|mc(?:b|g)r|kpmg|nlpbr|ndqv|lcgc|cplpr)|[^@]{26}|.*?\@.{0,20}\b(?:cmp-info|cmpgnr|cnn|tori|jysk|amadeus|amazon)\.[a-z]{2,3}$)[^@]*(?:[bcdfgjklmnpqrtvwxz]{5}|[aeiouy]{5}|([a-z]{1,2})(?:\1){3})`: randomLocalPossible,
}

// randomLocalPossible: the alternation that ends HK_RANDOM_*'s pattern
// occurs somewhere in the text (under (?i), on lowered runes).
func randomLocalPossible(r []rune) bool {
	cons, vow := 0, 0
	for i, ch := range r {
		ch = unicode.ToLower(ch)
		if strings.ContainsRune("bcdfgjklmnpqrtvwxz", ch) {
			cons++
		} else {
			cons = 0
		}
		if strings.ContainsRune("aeiouy", ch) {
			vow++
		} else {
			vow = 0
		}
		if cons >= 5 || vow >= 5 || repeatsAt(r, i, 1) || repeatsAt(r, i, 2) {
			return true
		}
	}
	return false
}

// repeatsAt: ([a-z]{k})(?:\1){3} at i, under (?i).
func repeatsAt(r []rune, i, k int) bool {
	if i+4*k > len(r) {
		return false
	}
	for j := i; j < i+k; j++ {
		if ch := unicode.ToLower(r[j]); ch < 'a' || ch > 'z' {
			return false
		}
	}
	for j := i + k; j < i+4*k; j++ {
		if unicode.ToLower(r[j]) != unicode.ToLower(r[j-k]) {
			return false
		}
	}
	return true
}

// exactFor returns the exact evaluation of a backtracking rule's
// pattern, or its pre-check followed by bt, or nil.
// saExactText are exact evaluations that read the text itself (latin1
// for a byte rule) rather than all of it as runes.
var saExactText = map[string]func(x string, latin1 bool) bool{
	`(?sm)^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)`: fromNameInText,
}

func exactFor(pattern string, bt *regexp2.Regexp) func([]rune) bool {
	if f := saExact[pattern]; f != nil {
		return f
	}
	pre := saPrecheck[pattern]
	if pre == nil {
		return nil
	}
	return func(r []rune) bool {
		if !pre(r) {
			return false
		}
		ok, err := bt.MatchRunes(r)
		return ok && err == nil
	}
}

// randHeaderExcluded are __RAND_HEADER's negative look-ahead, lower case.
var randHeaderExcluded = []string{"accept-language", "authentication-results", "content-", "domainkey-signature", "dkim-",
	"list-", "mime-", "received-spf", "return-path", "thread-", "user-agent", "tracking-code"}

// randHeaderPossible: some line start where the look-ahead lets the match
// begin and the name, the colon, \s+ and \d match. Each [a-z]{n,} is
// followed by "-" or ":", so it takes its whole run of letters.
func randHeaderPossible(r []rune) bool {
	n := len(r)
	letters := func(i int) int {
		j := i
		for j < n {
			ch := unicode.ToLower(r[j])
			if ch < 'a' || ch > 'z' {
				break
			}
			j++
		}
		return j - i
	}
next:
	for p := 0; p < n; p++ {
		if p > 0 && r[p-1] != '\n' {
			continue
		}
		for _, x := range randHeaderExcluded {
			if runesHavePrefixFold(r[p:], x) {
				continue next
			}
		}
		a := letters(p)
		if a < 3 || p+a >= n || r[p+a] != '-' {
			continue
		}
		q := p + a + 1
		b := letters(q)
		if b < 3 || a < 4 && b < 4 || q+b >= n || r[q+b] != ':' {
			continue
		}
		k := q + b + 1
		sp := k
		for sp < n && asciiSpace(unicode.ToLower(r[sp])) {
			sp++
		}
		for j := k + 1; j <= sp && j < n; j++ {
			// \s+ may give back: a digit after any of its lengths.
			if asciiDigit(unicode.ToLower(r[j])) {
				return true
			}
		}
	}
	return false
}

// matchExact is matchRegex for a rule with an exact evaluation.
func (c *crule) matchExact(x string) bool {
	if !c.linePossible(x) {
		return false
	}
	if c.exactText != nil {
		return c.exactText(x, c.bytes)
	}
	if c.bytes {
		x = latin1Runes(x)
	}
	bp := getRunes()
	defer putRunes(bp)
	r := (*bp)[:0]
	if cap(r) < len(x) {
		r = make([]rune, 0, len(x)) // at most one rune a byte
	}
	for _, ch := range x {
		r = append(r, ch)
	}
	*bp = r
	return c.exact(r)
}

// getRunes and putRunes share btMatch's free list of rune buffers.
func getRunes() *[]rune {
	select {
	case bp := <-runeBufs:
		return bp
	default:
		return new([]rune)
	}
}

func putRunes(bp *[]rune) {
	if cap(*bp) > maxPooledRunes {
		return
	}
	*bp = (*bp)[:0]
	select {
	case runeBufs <- bp:
	default:
	}
}

// fromNameInMsg is (?sm)^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$).
//
// The capture is one character other than "<", a run of non-space, one
// space and a run of non-space, followed by a space. Since a \S+ is
// followed by \s, each run ends where the non-space does: the capture is
// fixed by where it starts, and \s+ leaves only two starts, the first
// non-space after "From:" or the space before it.
func fromNameInMsg(r []rune) bool {
	for p := 0; p+5 <= len(r); p++ {
		if (p == 0 || r[p-1] == '\n') && fromNameAt(r, p) {
			return true
		}
	}
	return false
}

// fromNameAt is fromNameInMsg's match from line start p.
func fromNameAt(r []rune, p int) bool {
	n := len(r)
	if !runesHavePrefix(r[p:], "From:") {
		return false
	}
	j := p + 5
	e := j
	for e < n && asciiSpace(r[e]) {
		e++
	}
	if e == j {
		return false
	}
	for _, q := range [2]int{e, e - 1} {
		if q < j+1 || q >= n || r[q] == '<' {
			continue
		}
		a := q + 1
		for a < n && !asciiSpace(r[a]) {
			a++
		}
		if a == q+1 || a >= n {
			continue
		}
		b := a + 1
		for b < n && !asciiSpace(r[b]) {
			b++
		}
		if b == a+1 || b >= n {
			continue
		}
		if wholeLineAhead(r, b+1, r[q:b], 2048) {
			return true
		}
	}
	return false
}

// fromNameInText is fromNameInMsg on the text itself (latin1: each byte
// a rune, as a byte rule reads it): only a window after each line that
// starts with "From:" is read as runes, not the whole message (the full
// text of a message with an attachment is the attachment too). A window
// holds the From line up to the name's furthest end and 2,048 + the
// name's length + 3 runes after it, all the look-ahead can read, so
// within the window no match is lost and none is made up at its cut end.
// Past a few such lines the rest of the text is read once, as before, so
// that many From lines cannot cost more than that.
func fromNameInText(x string, latin1 bool) bool {
	const maxWindows = 4
	bp := getRunes()
	defer putRunes(bp)
	windows := 0
	// The search is for the colon: no base64 line holds one, so an
	// attachment's body passes at IndexByte's speed.
	for k := 4; k < len(x); k++ {
		i := strings.IndexByte(x[k:], ':')
		if i < 0 {
			return false
		}
		k += i
		p := k - 4
		if p < 0 || x[p:k] != "From" || p > 0 && x[p-1] != '\n' {
			continue
		}
		if windows++; windows > maxWindows {
			*bp = appendRunes((*bp)[:0], x[p:], latin1, len(x))
			return fromNameInMsg(*bp)
		}
		// The furthest the name can end: three space-separated words
		// after the spaces that follow "From:".
		e := p + 5
		for e < len(x) && asciiSpace(rune(x[e])) {
			e++
		}
		b := e
		for w := 0; w < 3 && b < len(x); w++ {
			if w > 0 {
				b++ // the one \s between words
			}
			for b < len(x) && !asciiSpace(rune(x[b])) {
				b++
			}
		}
		*bp = appendRunes((*bp)[:0], x[p:], latin1, (b-p)+1+2048+(b-e)+3)
		if fromNameAt(*bp, 0) {
			return true
		}
	}
	return false
}

// appendRunes appends the first n runes of s to r: its UTF-8 (an invalid
// byte as U+FFFD), or each byte a rune when latin1.
func appendRunes(r []rune, s string, latin1 bool, n int) []rune {
	if latin1 {
		for i := 0; i < len(s) && i < n; i++ {
			r = append(r, rune(s[i]))
		}
		return r
	}
	for _, ch := range s {
		if n == 0 {
			break
		}
		r = append(r, ch)
		n--
	}
	return r
}

// wholeLineAhead is (?=.{1,max}^c\r?$) at st under (?sm): a line that is
// c (with an optional "\r" before its end) starting 1 to max characters
// after st.
func wholeLineAhead(r []rune, st int, c []rune, max int) bool {
	n := len(r)
	for l := st + 1; l <= st+max && l+len(c) <= n; l++ {
		if r[l-1] != '\n' || !runesEqual(r[l:l+len(c)], c) {
			continue
		}
		t := l + len(c)
		if t == n || r[t] == '\n' || r[t] == '\r' && (t+1 == n || r[t+1] == '\n') {
			return true
		}
	}
	return false
}

func runesHavePrefix(r []rune, p string) bool {
	if len(r) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if r[i] != rune(p[i]) {
			return false
		}
	}
	return true
}

func runesEqual(a, b []rune) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hdrPair is the shape of the header-pair patterns, all under (?ism):
//
//	\n A (?:[^\n<]{0,80}<)? ([^\n\s>]+) >?\n+ (?:[^\n]{1,lines}\n+)* B PRE \1 TAIL
//
// PRE is (?:[^\n]{0,80}<)? with angle, else [^\n]{0,100}; capComma adds
// "," to the characters the capture excludes; TAIL is one of tail or a
// space, or with notAlnum [^a-z0-9].
//
// Under (?i) regexp2 lowers each input rune (unicode.ToLower) before it
// compares it with a literal or a class, and compares a back-reference
// rune by lowered rune. Everything else is forced: the optional "<"
// group can only end at the first "<"; the capture must run to the end
// of its characters, as ">" and "\n" follow it; \n+ and each line of the
// loop take whole runs and lines, so B can only start at the start of
// one of the lines that follow, up to and including the first one longer
// than lines.
type hdrPair struct {
	a, b     string // lower case
	at       bool   // [^\n@]{0,80}@ before the capture and [^\n]+@ before \1 instead
	capComma bool
	lines    int
	angle    bool
	tail     string
	notAlnum bool
	// then, when set, tries the second line's part instead of B, PRE,
	// \1 and TAIL.
	then func(r []rune, m int, c []rune) bool
}

func (h hdrPair) match(r []rune) bool {
	n := len(r)
	for i := 0; i < n; i++ {
		if r[i] != '\n' || !runesHavePrefixFold(r[i:], h.a) {
			continue
		}
		j := i + len(h.a)
		if !h.at && h.capture(r, j) {
			return true
		}
		// Through the first "<" (or "@") of the line, if within 80
		// characters.
		mark := '<'
		if h.at {
			mark = '@'
		}
		for u := j; u < n && u-j <= 80; u++ {
			ch := unicode.ToLower(r[u])
			if ch == '\n' {
				break
			}
			if ch == mark {
				if h.capture(r, u+1) {
					return true
				}
				break
			}
		}
	}
	return false
}

// capture tries the capture starting at g and every B line after it.
func (h hdrPair) capture(r []rune, g int) bool {
	n := len(r)
	e := g
	for e < n {
		ch := unicode.ToLower(r[e])
		if ch == '\n' || ch == '>' || asciiSpace(ch) || h.capComma && ch == ',' {
			break
		}
		e++
	}
	if e == g {
		return false
	}
	c := r[g:e]
	p := e
	if p < n && r[p] == '>' {
		p++
	}
	if p >= n || r[p] != '\n' {
		return false
	}
	return eachLineStart(r, p, h.lines, func(m int) bool { return h.second(r, m, c) })
}

// eachLineStart calls try at each line start that \n+(?:[^\n]{1,max}\n+)*
// reaches from the "\n" at p, and reports whether one of them matched.
func eachLineStart(r []rune, p, max int, try func(m int) bool) bool {
	n := len(r)
	for {
		for p < n && r[p] == '\n' {
			p++
		}
		if try(p) {
			return true
		}
		q := p
		for q < n && r[q] != '\n' {
			q++
		}
		if q >= n || q-p > max {
			return false
		}
		p = q
	}
}

// second tries B, PRE, \1 and TAIL at the line start m.
func (h hdrPair) second(r []rune, m int, c []rune) bool {
	if h.then != nil {
		return h.then(r, m, c)
	}
	if !runesHavePrefixFold(r[m:], h.b) {
		return false
	}
	k := m + len(h.b)
	n := len(r)
	if h.at {
		// [^\n]+@: any "@" of the line after its first character.
		for w := k + 1; w < n; w++ {
			ch := unicode.ToLower(r[w])
			if ch == '\n' || unicode.ToLower(r[w-1]) == '\n' {
				break
			}
			if ch == '@' && h.ref(r, w+1, c) {
				return true
			}
		}
		return false
	}
	if h.angle {
		if h.ref(r, k, c) {
			return true
		}
		for w := k; w < n && w-k <= 80; w++ {
			ch := unicode.ToLower(r[w])
			if ch == '\n' {
				break
			}
			if ch == '<' && h.ref(r, w+1, c) {
				return true
			}
		}
		return false
	}
	for s := k; s < n && s-k <= 100; s++ {
		if h.ref(r, s, c) {
			return true
		}
		if unicode.ToLower(r[s]) == '\n' {
			break
		}
	}
	return false
}

// ref tests \1 and TAIL at s.
func (h hdrPair) ref(r []rune, s int, c []rune) bool {
	t := s + len(c)
	if t >= len(r) {
		return false
	}
	if !runesHavePrefixFoldRunes(r[s:], c) {
		return false
	}
	ch := unicode.ToLower(r[t])
	if h.notAlnum {
		return !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9')
	}
	return asciiSpace(ch) || strings.ContainsRune(h.tail, ch)
}

// runesHavePrefixFoldRunes is a back-reference under (?i): r starts with
// p, rune by lowered rune.
func runesHavePrefixFoldRunes(r, p []rune) bool {
	if len(r) < len(p) {
		return false
	}
	for i, ch := range p {
		if unicode.ToLower(r[i]) != unicode.ToLower(ch) {
			return false
		}
	}
	return true
}

// runesHavePrefixFold is runesHavePrefix for a lower-case p under (?i).
func runesHavePrefixFold(r []rune, p string) bool {
	if len(r) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if unicode.ToLower(r[i]) != rune(p[i]) {
			return false
		}
	}
	return true
}

// hdrUser is the shape of the __TO_EQ_FROM_USR patterns, under (?ism):
//
//	\n A \s+ (?:[^\n<]{0,80}<)? (CAP) \d* \@ [^\n\s]+ >? \n+ (?:[^\n]{1,100}\n+)* B \s+ (?:[^\n]{0,80}<)? \1 \d* [\@>,\s\n]
//
// CAP is [^\n\s\@>]+, or with digits [^\n\s\@>]{4,80}? (and the two \d*
// are there only then). As in hdrPair everything is forced but for a few
// starts: \s+ gives back only to let the optional group start at the
// first non-space (anything earlier leaves less of its 80 characters),
// the capture's run must end at the "@", [^\n\s]+>? must reach a "\n",
// and a capture with digits may leave any all-digit tail of its run to
// \d*. Unlike hdrPair, \s+ may cross line ends.
type hdrUser struct {
	a, b   string // lower case
	digits bool
}

func (h hdrUser) match(r []rune) bool {
	n := len(r)
	for i := 0; i < n; i++ {
		if r[i] != '\n' || !runesHavePrefixFold(r[i:], h.a) {
			continue
		}
		j := i + len(h.a)
		e := spaceRun(r, j)
		if e == j {
			continue
		}
		if h.captures(r, e) {
			return true
		}
		for u := e; u < n && u-e <= 80; u++ {
			ch := unicode.ToLower(r[u])
			if ch == '\n' {
				break
			}
			if ch == '<' {
				if h.captures(r, u+1) {
					return true
				}
				break
			}
		}
	}
	return false
}

// spaceRun returns the end of the run of white space at j.
func spaceRun(r []rune, j int) int {
	for j < len(r) && asciiSpace(unicode.ToLower(r[j])) {
		j++
	}
	return j
}

// captures tries every capture starting at g.
func (h hdrUser) captures(r []rune, g int) bool {
	n := len(r)
	x := g // the end of the capture's run: it must be an "@"
	for x < n {
		ch := unicode.ToLower(r[x])
		if ch == '\n' || ch == '@' || ch == '>' || asciiSpace(ch) {
			break
		}
		x++
	}
	if x == g || x >= n || r[x] != '@' {
		return false
	}
	w := x + 1 // [^\n\s]+ then >? then \n
	for w < n && !asciiSpace(unicode.ToLower(r[w])) {
		w++
	}
	if w == x+1 || w >= n || r[w] != '\n' {
		return false
	}
	if !h.digits {
		return h.lines(r, w, r[g:x])
	}
	for l := 4; l <= 80 && g+l <= x; l++ {
		if allDigits(r[g+l:x]) && h.lines(r, w, r[g:g+l]) {
			return true
		}
	}
	return false
}

// lines tries B at each line start the loop can reach from the "\n" at p.
func (h hdrUser) lines(r []rune, p int, c []rune) bool {
	return eachLineStart(r, p, 100, func(m int) bool { return h.second(r, m, c) })
}

func (h hdrUser) second(r []rune, m int, c []rune) bool {
	if !runesHavePrefixFold(r[m:], h.b) {
		return false
	}
	k := m + len(h.b)
	e := spaceRun(r, k)
	if e == k {
		return false
	}
	if h.ref(r, e, c) {
		return true
	}
	for w := e; w < len(r) && w-e <= 80; w++ {
		ch := unicode.ToLower(r[w])
		if ch == '\n' {
			break
		}
		if ch == '<' && h.ref(r, w+1, c) {
			return true
		}
	}
	return false
}

// ref tests \1, \d* and the tail at s.
func (h hdrUser) ref(r []rune, s int, c []rune) bool {
	t := s + len(c)
	if t > len(r) {
		return false
	}
	if !runesHavePrefixFoldRunes(r[s:], c) {
		return false
	}
	if h.digits {
		for t < len(r) && asciiDigit(unicode.ToLower(r[t])) {
			t++
		}
	}
	if t >= len(r) {
		return false
	}
	ch := unicode.ToLower(r[t])
	return ch == '@' || ch == '>' || ch == ',' || asciiSpace(ch)
}

func allDigits(r []rune) bool {
	for _, ch := range r {
		if !asciiDigit(unicode.ToLower(ch)) {
			return false
		}
	}
	return true
}

// asciiSpace and asciiDigit are \s and \d as compileBacktrack reads them
// (asciiClasses): Perl's on SpamAssassin's bytes, but for \s the vertical
// tab, which Go's \s leaves out. Every engine must read \s alike: a
// backtracking rule runs only where its RE2 superset (Go's \s) matches,
// and a class holding \s is rebuilt by Go's parser, so a \v that regexp2
// alone took for a space was a match the superset refused.
func asciiSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\f', '\r', ' ':
		return true
	}
	return false
}

func asciiDigit(r rune) bool { return '0' <= r && r <= '9' }
