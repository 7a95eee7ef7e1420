package links

import (
	"html"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unescapeSamples are references of every form, whole and cut short, in
// and out of context, and the repository's HTML mail.
func unescapeSamples(t *testing.T) []string {
	s := []string{
		"", "&", "&&", "&;", "&#", "&#;", "&#x", "&#x;", "&#X41;", "&#65", "&#65;", "&#65x",
		"&#1x", "&#12x", "&#0;", "&#128;", "&#x9f;", "&#xD800;", "&#1114112;", "&#99999999999;",
		"&amp;", "&amp", "&ampx", "&notit;", "&notin;", "&nbsp;&nbsp", "&NotEqualTilde;",
		"a&lt;b&gt;c", "&quot;&apos;", "&#x1F600;", "x&#x2e;com", "&&amp;;", "&#&#65;",
	}
	files, _ := filepath.Glob("../../testdata/*.eml")
	more, _ := filepath.Glob("../../filter/testdata/mail/*/*")
	for _, f := range append(files, more...) {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "&") {
			s = append(s, string(b))
		}
	}
	rng := rand.New(rand.NewPCG(32, 33))
	pieces := []string{"&", "#", "x", "X", ";", "amp", "lt", "nbsp", "not", "in", "0", "9", "65", "1F", "d8", "a", " ", "é"}
	for range 30000 {
		var b strings.Builder
		for range rng.IntN(10) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s = append(s, b.String())
	}
	return s
}

// unescapeHTML decodes as html.UnescapeString does.
func TestUnescapeHTML(t *testing.T) {
	for _, s := range unescapeSamples(t) {
		if got, want := unescapeHTML(s), html.UnescapeString(s); got != want {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	}
}

// Text with references costs one allocation, its size; text without
// costs none.
func TestUnescapeHTMLAllocs(t *testing.T) {
	text := strings.Repeat(`<a href="http://exa&#109;ple&#x2e;com/?a=1&amp;b=2">caf&eacute;&nbsp;</a>`, 100)
	if n := testing.AllocsPerRun(10, func() { unescapeHTML(text) }); n > 1+100 {
		t.Errorf("%v allocations", n)
	}
	if n := testing.AllocsPerRun(10, func() { unescapeHTML("plain text") }); n != 0 {
		t.Errorf("%v allocations without references", n)
	}
	common := strings.Repeat("a&amp;b&#65;&#x41;&lt;&gt;&quot;&nbsp;", 100)
	if n := testing.AllocsPerRun(10, func() { unescapeHTML(common) }); n != 1 {
		t.Errorf("%v allocations for the common forms, want 1", n)
	}
}

func FuzzUnescapeHTML(f *testing.F) {
	for _, s := range []string{"&#x2e;&amp;", "&notit;&#128;", "&#65x&&#;", "a&lt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := unescapeHTML(s), html.UnescapeString(s); got != want {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	})
}
