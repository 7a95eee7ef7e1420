package links

import (
	"html"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

func unescapeString(s string) string {
	_, out, _ := unescapeHTML(nil, s)
	return out
}

// unescapeHTML decodes as html.UnescapeString does.
func TestUnescapeHTML(t *testing.T) {
	var buf []byte
	for _, s := range unescapeSamples(t) {
		var got string
		buf, got, _ = unescapeHTML(buf, s) // reused, as a collector does
		if want := html.UnescapeString(s); got != want {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	}
}

// Text with references costs no allocation once the buffer has grown
// (one for each rare reference), and text without none at all.
func TestUnescapeHTMLAllocs(t *testing.T) {
	buf := make([]byte, 0, 64<<10)
	text := strings.Repeat(`<a href="http://exa&#109;ple&#x2e;com/?a=1&amp;b=2">caf&eacute;&nbsp;</a>`, 100)
	if n := testing.AllocsPerRun(10, func() { buf, _, _ = unescapeHTML(buf, text) }); n > 100 {
		t.Errorf("%v allocations", n)
	}
	if n := testing.AllocsPerRun(10, func() { unescapeHTML(nil, "plain text") }); n != 0 {
		t.Errorf("%v allocations without references", n)
	}
	common := strings.Repeat("a&amp;b&#65;&#x41;&lt;&gt;&quot;&nbsp;", 100)
	if n := testing.AllocsPerRun(10, func() { buf, _, _ = unescapeHTML(buf, common) }); n != 0 {
		t.Errorf("%v allocations for the common forms, want 0", n)
	}
}

// snapshot copies links into memory of their own.
func snapshot(links []Link) []Link {
	out := make([]Link, len(links))
	for i, l := range links {
		out[i] = Link{URL: strings.Clone(l.URL), Host: strings.Clone(l.Host), Domain: strings.Clone(l.Domain), IP: l.IP}
	}
	return out
}

// A collector reuses its buffer for each HTML text it decodes: what it
// keeps (the links, its memo of hosts) must not be the buffer's bytes.
// The test overwrites the buffer after each text and then compares.
func TestCollectorOwnsWhatItKeeps(t *testing.T) {
	texts := []string{
		`<a href="http://Exa&#109;ple.COM/a">x</a> &amp; http://www.Example.com/b www.example.org/c`,
		`&nbsp;<img src="//CDN.example.net/i.png"> http://example.com/a http://EXAMPLE.com/d &#x2e;`,
		`<a href="https://b&uuml;cher.example/x">&lt;</a> http://192.168.1.1/&amp; http://[::1]/z`,
		`&amp; http://example.org/c HTTP://WWW.EXAMPLE.COM/b <a href="http://cdn.example.net/i.png">`,
		`&amp; http://www.example.com./p <a href="http://mail.example.net.:8080/q">x</a>`,
	}
	texts = append(texts, unescapeSamples(t)[:40]...)
	for i := range texts {
		for j := range texts {
			checkOwns(t, texts[i], texts[j])
		}
	}
}

// checkOwns adds a and then b to a collector, overwriting its buffer
// after each, and fails unless the links and the memo are what they were.
func checkOwns(t *testing.T, a, b string) {
	t.Helper()
	scribble := func(c *collector) {
		if c.buf != nil {
			b := (*c.buf)[:cap(*c.buf)]
			for i := range b {
				b[i] = 'X'
			}
		}
	}
	c := newCollector(0)
	defer c.release()
	c.add(a, true)
	first := snapshot(c.links)
	scribble(c)
	c.add(b, true)
	scribble(c)
	if got := c.links[:len(first)]; !reflect.DeepEqual(snapshot(got), first) {
		t.Fatalf("%q then %q: first links became %v, were %v", a, b, got, first)
	}
	// The second text's links are its own, less those seen in the first.
	ref := newCollector(0)
	defer ref.release()
	ref.add(b, true)
	var want []Link
	for _, l := range snapshot(ref.links) {
		if !slices.ContainsFunc(first, func(f Link) bool { return f.URL == l.URL }) {
			want = append(want, l)
		}
	}
	if got := snapshot(c.links[len(first):]); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
		t.Fatalf("%q then %q: second links %v, want %v", a, b, got, want)
	}
	// The memo's keys are still the hosts they were made from.
	for k, r := range c.hosts {
		if l, ok := normalise(k); ok != r.ok || l.Host != r.l.Host || l.Domain != r.l.Domain {
			t.Fatalf("%q then %q: memo key %q holds %+v", a, b, k, r)
		}
	}
}

func FuzzCollectorOwns(f *testing.F) {
	f.Add(`&amp; http://www.Example.com./p`, `<a href="http://www.example.com">&lt;`)
	f.Add(`<a href="//CDN.example.net/i.png">&nbsp;`, `&amp;http://cdn.example.net/`)
	f.Fuzz(func(t *testing.T, a, b string) {
		checkOwns(t, a, b)
	})
}

func FuzzUnescapeHTML(f *testing.F) {
	for _, s := range []string{"&#x2e;&amp;", "&notit;&#128;", "&#65x&&#;", "a&lt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := unescapeString(s), html.UnescapeString(s); got != want {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	})
}
