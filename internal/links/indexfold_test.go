package links

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIndexFold: indexFold finds what a case-folded strings.Index finds.
func TestIndexFold(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alpha = "cChHaArRsSeEtT<a =\xc3"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return string(b)
	}
	fold := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	for range 20000 {
		s := word(r.IntN(40))
		for _, sub := range []string{"charset", "<a ", "ch", "c", "href", fold(word(1 + r.IntN(3)))} {
			if got, want := indexFold(s, sub), strings.Index(fold(s), sub); got != want {
				t.Fatalf("indexFold(%q, %q) = %d, want %d", s, sub, got, want)
			}
		}
	}
}
