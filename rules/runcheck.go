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
// byte, which only U+FFFD matches, is one of those).

type runCheck struct {
	in [256]bool
	n  int
}

// maxRunRate is how likely, at most, a position of ordinary text may start
// the run for the check to be worth its scan.
const maxRunRate = 1e-4

// newRunCheck returns the most selective run check for pattern, or nil
// when none is selective enough.
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
	var best *runCheck
	bestRate := maxRunRate
	for _, e := range elems {
		rc := elemRun(e)
		if rc == nil {
			continue
		}
		if r := rc.rate(); r < bestRate {
			best, bestRate = rc, r
		}
	}
	return best
}

// elemRun returns the run that one concatenated element requires, or nil.
func elemRun(e *syntax.Regexp) *runCheck {
	for e.Op == syntax.OpCapture {
		e = e.Sub[0]
	}
	n := 1
	switch e.Op {
	case syntax.OpPlus:
		e = e.Sub[0]
	case syntax.OpRepeat:
		if e.Min < 1 {
			return nil
		}
		n = e.Min
		e = e.Sub[0]
	case syntax.OpLiteral:
		rc := &runCheck{n: len(e.Rune)}
		for _, r := range e.Rune {
			rc.addRune(r, e.Flags&syntax.FoldCase != 0)
		}
		return rc
	}
	for e.Op == syntax.OpCapture {
		e = e.Sub[0]
	}
	rc := &runCheck{n: n}
	switch e.Op {
	case syntax.OpCharClass:
		for i := 0; i+1 < len(e.Rune); i += 2 {
			rc.addRange(e.Rune[i], e.Rune[i+1])
		}
	case syntax.OpAnyCharNotNL:
		rc.addRange(0, unicode.MaxRune)
		rc.in['\n'] = false
	case syntax.OpLiteral:
		if len(e.Rune) != 1 {
			return nil
		}
		rc.addRune(e.Rune[0], e.Flags&syntax.FoldCase != 0)
	default:
		return nil
	}
	return rc
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

// byteShare is a rough share of a byte in mail text.
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
	}
	return 0.1 / 66
}

// possible reports whether s has the run: when it has not, the regex
// cannot match s.
func (rc *runCheck) possible(s string) bool {
	k := 0
	for i := 0; i < len(s); i++ {
		if !rc.in[s[i]] {
			k = 0
			continue
		}
		if k++; k >= rc.n {
			return true
		}
	}
	return false
}
