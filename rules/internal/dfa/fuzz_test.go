package dfa

import (
	"regexp"
	"testing"
)

// FuzzDFA: the DFA answers as Go's regexp for any pattern regexp takes,
// on any text, read as UTF-8 and as Latin-1.
func FuzzDFA(f *testing.F) {
	for i, p := range patterns {
		f.Add(p, inputs[i%len(inputs)])
	}
	f.Add(`(?i)\b(?:our company|we)\s+(?:are|is)\b`, "We are\xff")
	f.Add(`(?m)^\w+$`, "ab\ncd")
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(pattern) > 200 || len(text) > 2000 {
			return
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		d, err := Compile(pattern)
		if err != nil {
			return // too large: the caller keeps regexp
		}
		d.SetMaxCells(1 << 14)
		if got, want := d.MatchString(text), re.MatchString(text); got != want {
			t.Fatalf("%q on %q: dfa %v, regexp %v", pattern, text, got, want)
		}
		if got, want := d.MatchLatin1(text), re.MatchString(latin1(text)); got != want {
			t.Fatalf("%q on Latin-1 %q: dfa %v, regexp %v", pattern, text, got, want)
		}
	})
}

// FuzzMulti: a group of up to three patterns answers, for each, as Go's
// regexp on any text, read as UTF-8 and as Latin-1, whichever members are
// given as done.
func FuzzMulti(f *testing.F) {
	for i, p := range patterns {
		f.Add(p, patterns[(i+7)%len(patterns)], patterns[(i+19)%len(patterns)], inputs[i%len(inputs)], uint8(i))
	}
	f.Add(`\b(?:[a-z]{3,}[\s\.]+){3}`, `(?m)^\s*(?:[a-z]+\s+){2}\.$`, `\S`, "abc def\nghi jk .", uint8(0))
	f.Fuzz(func(t *testing.T, p0, p1, p2, text string, done uint8) {
		if len(p0)+len(p1)+len(p2) > 300 || len(text) > 2000 {
			return
		}
		var res []*regexp.Regexp
		var ds []*DFA
		for _, p := range []string{p0, p1, p2} {
			re, err := regexp.Compile(p)
			if err != nil {
				return
			}
			res = append(res, re)
			ds = append(ds, New(re))
		}
		g := NewMulti(ds)
		g.SetMaxCells(1 << 14)
		checkMulti(t, g, res, text, uint64(done&7))
	})
}
