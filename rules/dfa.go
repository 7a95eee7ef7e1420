package rules

import (
	"regexp"

	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
)

// Every regex the engine runs through Go's regexp is only asked whether
// it matches, and Go's regexp pays for each thread at each position: a
// set's plain regexes (a rule's own, a backtracking rule's RE2 superset,
// the anchored lead regexes) also get a lazily built DFA
// (internal/dfa), which gives the same answer at one table look-up per
// rune. A pattern whose program is too large keeps only Go's regexp; a
// DFA that reaches its memory cap answers with Go's regexp itself.

// useDFAs gives the set's regexes their DFAs, one per distinct pattern.
// A DFA is parsed at its first match and its states are built by the
// matches: a reload costs nearly nothing more.
func (s *Set) useDFAs() {
	made := map[string]*dfa.DFA{}
	get := func(re *regexp.Regexp) *dfa.DFA {
		if re == nil {
			return nil
		}
		p := re.String()
		d, ok := made[p]
		if !ok {
			d = dfa.New(re)
			made[p] = d
		}
		return d
	}
	for _, c := range s.rules {
		c.reD, c.preD = get(c.re), get(c.btPre)
		if c.lead != nil {
			c.lead.d0, c.lead.d1 = get(c.lead.at0), get(c.lead.at1)
		}
	}
}

// regexMatch reports whether re (or d, its DFA, when not nil) matches x,
// read as Latin-1 when bytes.
func regexMatch(d *dfa.DFA, re *regexp.Regexp, x string, bytes bool) bool {
	switch {
	case d != nil && bytes:
		return d.MatchLatin1(x)
	case d != nil:
		return d.MatchString(x)
	case bytes:
		return re.MatchString(latin1Runes(x))
	}
	return re.MatchString(x)
}
