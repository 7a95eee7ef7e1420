package rules

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// wildcardSplit is wildcardMatch as first written, by splitting: the
// reference the allocation-free version must agree with.
func wildcardSplit(pattern, s string) bool {
	ps, ss := strings.Split(pattern, "."), strings.Split(s, ".")
	if len(ps) != len(ss) {
		return false
	}
	for i, p := range ps {
		if p == "*" {
			continue
		}
		pre, suf, ok := strings.Cut(p, "*")
		if !ok {
			if p != ss[i] {
				return false
			}
			continue
		}
		if len(ss[i]) < len(pre)+len(suf) || !strings.HasPrefix(ss[i], pre) || !strings.HasSuffix(ss[i], suf) {
			return false
		}
	}
	return true
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*.example.com", "mail.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"mail*.example.com", "mail2.example.com", true},
		{"mail*.example.com", "smail.example.com", false},
		{"a*a.com", "a.com", false},
		{"a*a.com", "aa.com", true},
		{"*", "com", true},
		{"*", "", true},
		{"x.*", "x.", true},
	} {
		if got := wildcardMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	alpha := "ab.*"
	gen := func(n int) string {
		b := make([]byte, rng.IntN(n))
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(b)
	}
	for range 100000 {
		p, s := gen(8), strings.ReplaceAll(gen(8), "*", "a")
		if got, want := wildcardMatch(p, s), wildcardSplit(p, s); got != want {
			t.Fatalf("wildcardMatch(%q, %q) = %v, by splitting %v", p, s, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { wildcardMatch("*.mail.example.com", "x.mail.example.com") }); n != 0 {
		t.Errorf("%v allocations per match", n)
	}
}
