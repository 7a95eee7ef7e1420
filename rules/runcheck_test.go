package rules

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestRunCheckChosen(t *testing.T) {
	for _, tc := range []struct {
		re string
		n  int // 0: no check
	}{
		{`\b[A-Za-z][a-z]{0,20}[,;)]?\s[A-Z]{16,}[a-z]?\s`, 16},
		{`(?i)[a-z0-9]{6}\s{8}[a-z0-9]{5}`, 8},
		{`(?m)^[^\r\n]{998}`, 998},
		{`\b(?:[a-z]{8,}[\s\.]+){6}`, 54}, // six words: 54 bytes of [a-z\s.]
		{`[a-z]{8,}`, 0},                  // lower-case words are ordinary text
		{`foo|[A-Z]{30}`, 3},              // three bytes of f, o or capitals either way
		{`[a-z]+|[A-Z]{30}`, 0},           // a letter either way: no use
		{`x[A-Z]{0,30}`, 0},
		{`(?:[A-Z]{30})`, 30},
	} {
		rc := newRunCheck(tc.re)
		switch {
		case tc.n == 0 && rc != nil:
			t.Errorf("%q: check of %d bytes, want none", tc.re, rc.n)
		case tc.n != 0 && (rc == nil || rc.n != tc.n):
			t.Errorf("%q: check %+v, want a run of %d", tc.re, rc, tc.n)
		}
	}
	rc := newRunCheck(`[A-Z]{4,}`)
	for s, want := range map[string]bool{"abCDEFg": true, "ABC DEF": false, "ABCD": true, "": false} {
		if rc.possible(s) != want {
			t.Errorf("possible(%q) = %v", s, !want)
		}
	}
}

// runCheckSound fails when re matches s but its run check says it cannot.
func runCheckSound(t testing.TB, pattern, s string) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return
	}
	rc := newRunCheck(re.String())
	if rc != nil && re.MatchString(s) && !rc.possible(s) {
		t.Fatalf("%q matches %q, but its run check (%d bytes) says it cannot", pattern, s, rc.n)
	}
}

// TestRunCheckSound: on texts built from pieces that sit at the edge of
// the classes (capitals, spaces, non-ASCII letters with case folds,
// invalid UTF-8), a check never refuses a text the regex matches.
func TestRunCheckSound(t *testing.T) {
	patterns := []string{
		`[A-Z]{6,}`, `(?i)[a-z]{6}\s{3}`, `\s{4}`, `[^\r\n]{12}`, `.{10}x`, `(?i)KKKK`,
		`[\x{80}-\x{10FFFF}]{5}`, `\x{FFFD}{4}`, `[É-Ü]{4,}`, `(?i)ſſſſ`, `[^a-z ]{6}`,
	}
	pieces := []string{"A", "BCDEF", " ", "  ", "\t", "\n", "\r", "x", "é", "É", "\u212A", "k", "K", "ſ", "s", "\xff", "\xc3", "\xa9", "-", "ÜÜ"}
	r := rand.New(rand.NewPCG(5, 5))
	checked := 0
	for range 20000 {
		var b strings.Builder
		for range 1 + r.IntN(16) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		p := patterns[r.IntN(len(patterns))]
		if newRunCheck(p) != nil {
			checked++
		}
		runCheckSound(t, p, b.String())
	}
	if checked < 10000 {
		t.Fatalf("only %d cases had a check: the test proves little", checked)
	}
}

// FuzzRunCheck: a run check never refuses a text its regex matches.
func FuzzRunCheck(f *testing.F) {
	f.Add(`[A-Z]{16,}`, "THIS IS SHOUTING ABCDEFGHIJKLMNOPQ")
	f.Add(`(?i)\s{8}k{3}`, "        \u212Akk")
	f.Add(`[^\r\n]{9}`, "é\xffabcdefgh")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 200 {
			return
		}
		runCheckSound(t, pattern, s)
	})
}

// TestRunCheckSkip: the skipping scan answers as a byte-by-byte count
// does, for runs of every length over random texts of set and other
// bytes.
func TestRunCheckSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	linear := func(rc *runCheck, s string) bool {
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
	rc := &runCheck{}
	rc.in['a'], rc.in['b'] = true, true
	hits := 0
	for range 200000 {
		rc.n = 1 + rng.IntN(12)
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = "aabx"[rng.IntN(4)]
		}
		want := linear(rc, string(b))
		if got := rc.possible(string(b)); got != want {
			t.Fatalf("n %d, %q: %v, counting %v", rc.n, b, got, want)
		}
		if want {
			hits++
		}
	}
	if hits < 1000 || hits > 199000 {
		t.Fatalf("%d runs found in 200,000 texts: too few of one answer", hits)
	}
}
