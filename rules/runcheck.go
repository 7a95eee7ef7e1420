package rules

import (
	"regexp/syntax"
	"unicode"
)

// A rule without a literal key runs on every line, but many such regexes
// need a run of bytes of one kind that ordinary text seldom has: sixteen
// capitals in a row, eight spaces, a line of 998 characters. A runCheck
// finds such a run with a table lookup per byte and skips the regex on a
// value without one. It is a necessary condition only: a value that has
// the run still goes to the regex.
//
// A regex element that matches at least n runes of a character class C
// (C, C{n,m}, C+, or a literal of n runes) makes every match hold at least
// n consecutive bytes from C's ASCII members, or from 0x80-0xFF when C has
// a non-ASCII member (every byte of a multi-byte rune, and every invalid
// byte, which only U+FFFD matches, is one of those). For a byte rule
// (perlbytes.go), whose runes up to 0xFF stand for bytes, the same holds
// of the bytes before they are read as Latin-1: the check runs on those.

type runCheck struct {
	in [256]bool
	n  int
}

// maxRunRate is how likely, at most, a position of ordinary text may start
// the run for the check to be worth its scan.
const maxRunRate = 1e-2

// newRunCheck returns the most selective run check for pattern, or nil
// when none is selective enough. The runs considered are those of every
// stretch of consecutive elements of the regex's top-level concatenation.
func newRunCheck(pattern string) *runCheck {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	elems := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		elems = re.Sub
	}
	if len(elems) > 64 {
		elems = elems[:64]
	}
	var best *runCheck
	bestRate := maxRunRate
	for i := range elems {
		acc := &runCheck{}
		for _, e := range elems[i:] {
			rc := runOf(e)
			if rc == nil {
				break
			}
			acc.union(rc)
			if acc.n == 0 {
				continue
			}
			if r := acc.rate(); r < bestRate {
				cp := *acc
				best, bestRate = &cp, r
			}
		}
	}
	return best
}

// runOf returns the bytes every match of e is made of and how many of
// them a match has at least (n may be 0), or nil when that is unknown.
func runOf(e *syntax.Regexp) *runCheck {
	switch e.Op {
	case syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpNoWordBoundary,
		syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
		return &runCheck{}
	case syntax.OpLiteral:
		rc := &runCheck{n: len(e.Rune)}
		for _, r := range e.Rune {
			rc.addRune(r, e.Flags&syntax.FoldCase != 0)
		}
		return rc
	case syntax.OpCharClass:
		rc := &runCheck{n: 1}
		for i := 0; i+1 < len(e.Rune); i += 2 {
			rc.addRange(e.Rune[i], e.Rune[i+1])
		}
		return rc
	case syntax.OpAnyCharNotNL:
		rc := &runCheck{n: 1}
		rc.addRange(0, unicode.MaxRune)
		rc.in['\n'] = false
		return rc
	case syntax.OpCapture, syntax.OpPlus:
		return runOf(e.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		rc := runOf(e.Sub[0])
		if rc != nil {
			rc.n = 0
		}
		return rc
	case syntax.OpRepeat:
		rc := runOf(e.Sub[0])
		if rc != nil {
			rc.n = min(rc.n*e.Min, 1<<20)
		}
		return rc
	case syntax.OpConcat:
		acc := &runCheck{}
		for _, s := range e.Sub {
			rc := runOf(s)
			if rc == nil {
				return nil
			}
			acc.union(rc)
		}
		return acc
	case syntax.OpAlternate:
		acc := &runCheck{n: -1}
		for _, s := range e.Sub {
			rc := runOf(s)
			if rc == nil {
				return nil
			}
			n := acc.n
			acc.union(rc)
			if n >= 0 {
				acc.n = min(n, rc.n)
			} else {
				acc.n = rc.n
			}
		}
		return acc
	}
	return nil
}

// union adds o's bytes and length to rc: o follows rc in a match.
func (rc *runCheck) union(o *runCheck) {
	for b, in := range o.in {
		if in {
			rc.in[b] = true
		}
	}
	rc.n = min(rc.n+o.n, 1<<20)
}

func (rc *runCheck) addRune(r rune, fold bool) {
	rc.addRange(r, r)
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			rc.addRange(f, f)
		}
	}
}

func (rc *runCheck) addRange(lo, hi rune) {
	for r := lo; r <= hi && r < 0x80; r++ {
		rc.in[r] = true
	}
	if hi >= 0x80 {
		for b := 0x80; b < 0x100; b++ {
			rc.in[b] = true
		}
	}
}

// rate estimates how likely a position of ordinary text starts the run.
func (rc *runCheck) rate() float64 {
	p := 0.0
	for b, in := range rc.in {
		if in {
			p += byteShare(byte(b))
		}
	}
	r := 1.0
	for range rc.n {
		if r *= p; r < 1e-12 {
			break
		}
	}
	return r
}

// byteShare is a rough share of a byte in mail text (the shares add up
// to 1).
func byteShare(b byte) float64 {
	switch {
	case 'a' <= b && b <= 'z':
		return 0.6 / 26
	case b == ' ':
		return 0.15
	case 'A' <= b && b <= 'Z':
		return 0.06 / 26
	case '0' <= b && b <= '9':
		return 0.04 / 10
	case b == '\n' || b == '\r':
		return 0.01
	case b >= 0x80:
		return 0.04 / 128
	case b == '.' || b == ',':
		return 0.015 // a sentence's
	}
	return 0.07 / 64
}

// possible reports whether s has the run: when it has not, the regex
// cannot match s.
func (rc *runCheck) possible(s string) bool {
	// Boyer-Moore's skip for a run: a byte outside the set at i rules out
	// every run that would hold it, so the next one to look at is n bytes
	// on. Most rules' runs are long (16 capitals, 54 letters and spaces)
	// and ordinary text leaves them early: a few bytes in n are read.
	n, in := rc.n, &rc.in
	if n <= 1 {
		return hasAny(in, s)
	}
	for i := n - 1; i < len(s); {
		if !in[s[i]] {
			i += n
			continue
		}
		j := i // the run through i, back and then on
		for j > 0 && i-j+1 < n && in[s[j-1]] {
			j--
		}
		k := i + 1
		for k < len(s) && k-j < n && in[s[k]] {
			k++
		}
		if k-j >= n {
			return true
		}
		i = k + n // s[k] is outside the set
	}
	return false
}
