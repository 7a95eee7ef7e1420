package rules

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

var tagNameCases = []string{
	`<p>x</p><BR/><Img SRC=a.png><a href="x">y</A ><font face=x size=3>`,
	"<div\tclass=x>\n<DiV\n></dIv\f>",
	"<x\x00y>z</x\x00Y>",
	"<a/b><c/ ></c/>",
	"<script>if (a<b) { x = '</scr'+'ipt>' }</SCRIPT><style>p{}</style>",
	"<title>t</title><textarea><b></textarea>",
	"</ x><!-- c --><!doctype html><?xml?>",
	"<a",
	"<ÄBC><äbc>",
}

func TestTagNameMatchesTagName(t *testing.T) {
	for _, src := range tagNameCases {
		checkTagName(t, src)
	}
}

// checkTagName compares tagName with TagName on every tag of src, each
// on its own tokenizer (TagName consumes the name).
func checkTagName(t *testing.T, src string) {
	t.Helper()
	z, z2 := html.NewTokenizer(strings.NewReader(src)), html.NewTokenizer(strings.NewReader(src))
	var buf []byte
	for {
		tt := z.Next()
		z2.Next()
		switch tt {
		case html.ErrorToken:
			return
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			got := string(tagName(z, &buf))
			want, _ := z2.TagName()
			if got != string(want) {
				t.Errorf("%q: tagName = %q, TagName = %q (raw %q)", src, got, want, z.Raw())
			}
		}
	}
}

func TestTagNameAllocs(t *testing.T) {
	src := strings.Repeat(`<p><B>bold</B> <a href="x">link</a></p>`, 10)
	var buf []byte
	n := testing.AllocsPerRun(10, func() {
		z := html.NewTokenizer(strings.NewReader(src))
		for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
			if tt != html.TextToken {
				tagName(z, &buf)
			}
		}
	})
	// The tokenizer's own allocations (its buffer, a copy of each
	// attribute key: 26 for this source), not one more per tag.
	if n >= 40 {
		t.Errorf("reading 60 tags allocates %v times", n)
	}
	if !bytes.Equal(buf, []byte("b")) {
		t.Errorf("the capitals went through buf %q, want \"b\"", buf)
	}
}

func FuzzTagName(f *testing.F) {
	for _, s := range tagNameCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) { checkTagName(t, src) })
}
