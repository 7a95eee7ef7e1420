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
