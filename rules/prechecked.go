package rules

import (
	"regexp"
	"regexp/syntax"

	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
)

// The evaluations' own parsers (Received lines, dates, MIME headers) ask
// Go's regexp many patterns of which most do not match the line at hand,
// and Go's backtracker pays at every start position to say no: a
// Received line cost 23–78 µs to parse, nearly all of it patterns that
// did not match. A precheckedRE asks the pattern's DFA first (one table
// look-up per rune, the same answer) and Go's regexp only for the
// submatches of a line that matches.
type precheckedRE struct {
	re *regexp.Regexp
	d  *dfa.DFA

	// For Index: the DFA of the pattern anchored at the text's start, and
	// the positions a leftmost match can start at (mustPrecheckStart).
	at    *dfa.DFA
	start func(s string, i int) bool
}

// mustPrecheck compiles pattern as regexp.MustCompile does.
func mustPrecheck(pattern string) *precheckedRE {
	re := regexp.MustCompile(pattern)
	return &precheckedRE{re: re, d: dfa.New(re)}
}

// mustPrecheckStart is mustPrecheck for a pattern whose leftmost match
// Index finds. start(s, i) must hold at every i where the leftmost match
// of the pattern in s can start (it may hold elsewhere too); the pattern
// must not look before its match (^, \b, \B), so that a match at i is a
// match at the start of s[i:].
func mustPrecheckStart(pattern string, start func(s string, i int) bool) *precheckedRE {
	p := mustPrecheck(pattern)
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil || looksBehind(re) {
		panic("rules: mustPrecheckStart: " + pattern + " looks before its match")
	}
	p.at = dfa.New(regexp.MustCompile(`^(?:` + pattern + `)`))
	p.start = start
	return p
}

// looksBehind reports whether re holds an assertion that reads the text
// before the position it is at.
func looksBehind(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	for _, sub := range re.Sub {
		if looksBehind(sub) {
			return true
		}
	}
	return false
}

// Index returns where the leftmost match of the pattern in s starts, -1
// when there is none. Go's regexp finds it by trying the pattern at every
// position, each try a walk of its backtracker; here the anchored DFA is
// asked at the positions start allows, in order, and each try stops where
// the automaton dies, a few bytes in. (Only for mustPrecheckStart's.)
func (p *precheckedRE) Index(s string) int {
	if !p.d.MatchString(s) {
		return -1 // one pass, however many starts a text offers
	}
	for i := 0; i < len(s); i++ {
		if p.start(s, i) && p.at.MatchString(s[i:]) {
			return i
		}
	}
	return -1
}

func (p *precheckedRE) MatchString(s string) bool { return p.d.MatchString(s) }

func (p *precheckedRE) FindStringSubmatch(s string) []string {
	if !p.d.MatchString(s) {
		return nil
	}
	return p.re.FindStringSubmatch(s)
}

func (p *precheckedRE) ReplaceAllString(s, repl string) string {
	if !p.d.MatchString(s) {
		return s
	}
	return p.re.ReplaceAllString(s, repl)
}

func (p *precheckedRE) String() string { return p.re.String() }

func (p *precheckedRE) FindAllStringSubmatch(s string, n int) [][]string {
	if !p.d.MatchString(s) {
		return nil
	}
	return p.re.FindAllStringSubmatch(s, n)
}
