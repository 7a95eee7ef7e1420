package rules

import (
	"regexp"

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
}

// mustPrecheck compiles pattern as regexp.MustCompile does.
func mustPrecheck(pattern string) *precheckedRE {
	re := regexp.MustCompile(pattern)
	return &precheckedRE{re: re, d: dfa.New(re)}
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
