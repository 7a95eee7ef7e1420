package rules

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// appendSquashed is the regex HTML.pm squashes text white space with,
// byte for byte, invalid UTF-8 and split U+00A0 included.
func TestAppendSquashedIsTheRegex(t *testing.T) {
	re := regexp.MustCompile(`(?:[ \t\n\r\f\x0b]|\x{a0})+`)
	alphabet := []byte{' ', '\t', '\n', '\r', '\f', '\v', 0xc2, 0xa0, 'a', 0xe2, 0x80, 'x', 0xff}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", " ", "a  b", "\u00a0", "a\u00a0 \tb", "\xc2", "\xa0", "\xe2\xc2\xa0x", "\xc2\xc2\xa0"}
	for range 5000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		want := re.ReplaceAllString(c, " ")
		if got := string(appendSquashed([]byte("pre"), []byte(c))); got != "pre"+want {
			t.Fatalf("appendSquashed(%q) = %q, want %q", c, got[3:], want)
		}
	}
}

// FuzzBodySpaces holds appendBodySpaces to its definition: the words of
// the line (split at runs of Unicode white space) joined by one space.
func FuzzBodySpaces(f *testing.F) {
	for _, s := range []string{"two  spaces", "a\tb", "no\u00a0break", "em\u2003\u2003space", "plain text", "bad \xff\xfe bytes", "x \u0085 y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.TrimFunc(line, unicode.IsSpace)
		want := strings.Join(strings.FieldsFunc(line, unicode.IsSpace), " ")
		if got := string(appendBodySpaces([]byte("prefix:"), line)); got != "prefix:"+want {
			t.Fatalf("appendBodySpaces(%q) = %q, want %q", line, got, "prefix:"+want)
		}
	})
}
