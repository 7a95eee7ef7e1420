package links

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The attribute loop as it was, looking at every byte: the reference
// for the one that goes from r to r.
func (c *collector) refAttributes(text string) {
	for i := 0; i < len(text)-1; i++ {
		if !mayStartAttr(text[i], text[i+1]) {
			continue
		}
		if c.full() {
			return
		}
		var n int
		switch {
		case hasPrefixFold(text[i:], "href"):
			n = 4
		case hasPrefixFold(text[i:], "src"):
			n = 3
		default:
			continue
		}
		if i > 0 && isWordByte(text[i-1]) {
			continue
		}
		j := skipSpace(text, i+n)
		if j >= len(text) || text[j] != '=' {
			continue
		}
		j = skipSpace(text, j+1)
		val, end := attrValue(text, j)
		i = end - 1
		val = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, val)
		val = strings.TrimSpace(val)
		switch {
		case hasPrefixFold(val, "http:") || hasPrefixFold(val, "https:"):
			c.push(c.parseURL(val))
		case strings.HasPrefix(val, "//") || strings.HasPrefix(val, `\\`):
			c.push(c.parseURL("http:" + val))
		}
	}
}

func checkAttributes(t *testing.T, text string, max int) {
	t.Helper()
	got, want := newCollector(max), newCollector(max)
	got.attributes(text)
	want.refAttributes(text)
	if !slices.Equal(got.links, want.links) {
		t.Fatalf("attributes(%q): %+v, the byte loop %+v", text, got.links, want.links)
	}
}

func TestAttributesAgree(t *testing.T) {
	pieces := []string{"href", "HREF", "hRef", "src", "SRC", "sRc", "=", " = ", `"`, "'", "http://a.example/", "//b.example",
		"HTTPS://c.example/x", "r", "R", "rr", "h", "s", "x", " ", "\n", "<a ", ">", "\t", "ſrc", "\xff"}
	rng := rand.New(rand.NewPCG(13, 14))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		checkAttributes(t, b.String(), 1+rng.IntN(4))
	}
	for _, s := range []string{"", "r", "hr", "href", "href=", `href="http://a.example/"`, `xhref=//a.example srC=//b.example`,
		`<a HREF="http://a.example/">r</a><img src='//b.example/i.png'>`, "rRrR"} {
		checkAttributes(t, s, 20)
	}
}

func FuzzAttributes(f *testing.F) {
	f.Add(`<a href="http://a.example/">x</a><img SRC=//b.example/>`, uint8(20))
	f.Add("hrefsrc=http://c.example r R", uint8(1))
	f.Fuzz(func(t *testing.T, text string, max uint8) {
		checkAttributes(t, text, int(max%30)+1)
	})
}
