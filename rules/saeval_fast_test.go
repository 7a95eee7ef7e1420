package rules

import (
	"math/rand/v2"
	"net/mail"
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

// TestParseDateCommon: where the shortcut answers, mail.ParseDate gives
// the same time, on dates of every shape ParseDate and the loose layouts
// know, with random damage.
func TestParseDateCommon(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := []string{
		"Tue, 1 Dec 2026 08:00:00 +0000", "Tue, 01 Dec 2026 08:00:00 -0530", "tue, 1 dec 2026 08:00:00 +0000",
		"Mon, 2 Jan 06 15:04:05 -0700", "Mon, 2 Jan 2006 15:04 -0700", "Mon, 2 Jan 2006 15:04:05 MST",
		"2 Jan 2006 15:04:05 -0700", "Mon, 2 Jan 2006 15:04:05 -0700 (PDT)", "Sun, 31 Feb 2026 25:61:61 +9999",
		"Fri, 13 Mar 2026 10:00:00 +0100", "Xyz, 1 Dec 2026 08:00:00 +0000", "Mon Jan 2 15:04:05 2006",
	}
	answered := 0
	for i := range 20000 {
		s := base[i%len(base)]
		if i >= len(base) {
			b := []byte(s)
			for range rng.IntN(3) {
				switch k := rng.IntN(len(b)); rng.IntN(3) {
				case 0:
					b[k] = " ,:+-0123456789aZ()\r\n"[rng.IntN(21)]
				case 1:
					b = append(b[:k], b[k+1:]...)
				default:
					b = append(b[:k], append([]byte{"0 :-+"[rng.IntN(5)]}, b[k:]...)...)
				}
			}
			s = strings.TrimSpace(string(b))
		}
		got, ok := parseDateCommon(s)
		if !ok {
			continue
		}
		answered++
		want, err := mail.ParseDate(s)
		if err != nil || want.Unix() != got {
			t.Fatalf("%q: shortcut %d, mail.ParseDate %v %v", s, got, want.Unix(), err)
		}
	}
	if answered < 1000 {
		t.Fatalf("the shortcut answered only %d dates", answered)
	}
}
