package rules

import (
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/portcullis-mail/portcullis/filter"
)

// The reading that serves every HTML consumer in one tokenizer pass
// (readHTML) against the three passes it replaced, kept here as they
// were: each output must be the same, byte for byte and count for count.

var (
	refNamespace = regexp.MustCompile(`^(?:o|st\d):[\w-]+/?$`)
	refImgDimRe  = regexp.MustCompile(`^(\d+)(%)?$`)
)

func refRenderHTML(b []byte, src string, max int) []byte {
	z := html.NewTokenizer(strings.NewReader(src))
	max += len(b)
	skip := 0 // inside script, style or template: raw text a reader never sees
	for len(b) < max {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				b = append(b, '\n')
			}
			return b
		case html.TextToken:
			if skip == 0 {
				// Line breaks in HTML source are spaces on screen; only
				// block elements (below) break lines.
				for _, c := range z.Text() {
					if c == '\n' || c == '\r' || c == '\t' {
						c = ' '
					}
					b = append(b, c)
				}
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			switch a {
			case atom.Script, atom.Style, atom.Template:
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case atom.Br, atom.P, atom.Div, atom.Tr, atom.Li, atom.H1, atom.H2, atom.H3,
				atom.H4, atom.H5, atom.H6, atom.Table, atom.Blockquote, atom.Hr, atom.Ul, atom.Ol, atom.Pre:
				b = append(b, '\n')
			case atom.Td, atom.Th:
				b = append(b, ' ')
			}
		}
	}
	return b[:min(len(b), max)]
}

func refSARenderHTML(src string, max int) string {
	z := html.NewTokenizer(strings.NewReader(src))
	bp := getBuf() // scratch: the text is copied once, at its size
	defer putBuf(bp)
	b := *bp
	defer func() { *bp = b }()
	skip := 0
	lastWS := false // the last piece written was a tag's white space
	for len(b) < max {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return string(b)
		case html.TextToken:
			if skip > 0 {
				continue
			}
			n := len(b)
			b = appendSquashed(b, z.Text())
			if lastWS && len(b) > n && b[n] == ' ' {
				b = append(b[:n], b[n+1:]...)
			}
			if len(b) > n {
				lastWS = false
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if a == atom.Script || a == atom.Style {
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
				continue
			}
			ws := ""
			switch a {
			case atom.Br, atom.Div:
				ws = "\n"
			case atom.Li, atom.Th, atom.Td, atom.Dt, atom.Dd, atom.Embed, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
				ws = " "
			case atom.P, atom.Hr, atom.Blockquote, atom.Pre, atom.Listing, atom.Plaintext, atom.Xmp, atom.Title:
				ws = "\n\n"
			default:
				continue
			}
			if !lastWS && len(b) > 0 && b[len(b)-1] == ' ' {
				b = b[:len(b)-1]
			}
			b = append(b, ws...)
			lastWS = true
		}
	}
	return string(b[:min(len(b), max)])
}

func refParseHTMLResult(src string) *htmlResult {
	r := &htmlResult{inside: map[string]int{}, length: len(src), minSize: 3, maxSize: 3}
	z := html.NewTokenizer(strings.NewReader(src))
	skip := 0
	tag := func(name string, num int, attrs map[string]string) {
		ns := refNamespace.MatchString(name)
		_, seen := r.inside[name]
		if saHTMLElements[name] || ns {
			r.elements++
			r.hasElem = true
			if !seen {
				r.elementsSeen++
			}
		}
		r.tags++
		r.hasTags = true
		if !seen {
			r.tagsSeen++
			r.hasTagsSn = true
		}
		r.inside[name] += num
		if r.inside[name] < 0 {
			r.inside[name] = 0
			r.closedExtra++
		}
		if ns || num != 1 {
			return
		}
		switch name {
		case "font":
			if f, ok := attrs["face"]; ok && !saFontFace.MatchString(f) {
				r.fontFaceBad = true
			}
			if s, ok := attrs["size"]; ok {
				size := 3
				if n, err := strconv.Atoi(strings.TrimPrefix(s, "+")); err == nil {
					if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
						size = 3 + n
					} else {
						size = n
					}
					if size > r.maxSize {
						r.maxSize = size
					} else if size < r.minSize {
						r.minSize = size
					}
				}
			}
		case "a":
			r.anchor = append(r.anchor, "")
		case "title":
			r.title = append(r.title, "")
		case "object", "embed":
			r.embeds = true
		case "img":
			if r.inside["a"] > 0 && len(r.anchor) > 0 {
				r.anchor[len(r.anchor)-1] += "<img>\n"
			}
			w, wok := attrs["width"]
			h, hok := attrs["height"]
			if wok && hok {
				r.imageArea += refImgDim(w, 8) * refImgDim(h, 6)
			}
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() == io.EOF || true {
				return r
			}
		case html.TextToken:
			if skip == 0 {
				t := z.Text()
				r.textPiece(t)
				// The visible text's length and its bytes other than
				// white space, counted as it comes (no copy of it).
				r.htmlLength += len(t)
				r.nonSpaceLen += len(t)
				for _, c := range t {
					if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
						r.nonSpaceLen--
					}
				}
				if r.inside["a"] > 0 && len(r.anchor) > 0 {
					r.anchor[len(r.anchor)-1] += string(t)
				}
				if r.inside["title"] > 0 && len(r.title) > 0 {
					r.title[len(r.title)-1] += string(t)
				}
			}
		case html.CommentToken:
			r.comment = append(r.comment, string(z.Raw()))
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			n := string(name)
			attrs := map[string]string{}
			for hasAttr {
				var k, val []byte
				k, val, hasAttr = z.TagAttr()
				attrs[string(k)] = string(val)
			}
			num := 1
			if tt == html.EndTagToken {
				num = -1
			}
			if n == "script" || n == "style" {
				if num == 1 && tt != html.SelfClosingTagToken {
					skip++
				} else if num == -1 && skip > 0 {
					skip--
				}
			}
			tag(n, num, attrs)
			if saHTMLWhitespace[n] {
				r.hasPiece, r.lastEndsWord, r.lastWS = true, false, true
			}
		}
	}
}

func refImgDim(s string, pct int) int {
	m := refImgDimRe.FindStringSubmatch(s)
	n := 0
	if m != nil {
		n, _ = strconv.Atoi(m[1])
		if m[2] == "%" {
			n *= pct
		}
	}
	if n <= 0 {
		n = 200
	}
	return n
}

// checkReading compares readHTML's outputs over src with the reference
// passes', under the limits max (the rendered texts' caps).
func checkReading(t *testing.T, src string, max int) {
	t.Helper()
	var body, sa []byte
	got := readHTML(src, &htmlOutputs{body: &body, bodyMax: max + 1, sa: &sa, saMax: max})
	if want := string(refRenderHTML(nil, src, max+1)); string(body) != want {
		t.Errorf("body text of %q (max %d):\n got %q\nwant %q", src, max, body, want)
	}
	if want := refSARenderHTML(src, max); string(sa) != want {
		t.Errorf("SpamAssassin text of %q (max %d):\n got %q\nwant %q", src, max, sa, want)
	}
	if b := string(renderHTML(nil, src, max+1)); b != string(body) {
		t.Errorf("renderHTML alone %q, in the shared pass %q", b, body)
	}
	want := refParseHTMLResult(src)
	got.anchorBuf, got.titleBuf, got.inA, got.inTitle, got.skip = nil, nil, 0, 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results of %q:\n got %+v\nwant %+v", src, *got, *want)
	}
}

var readingSeeds = []string{
	"",
	"plain text, no tags",
	"<html><head><title>T<b>i</b>tle</title><style>p{x}</style></head><body><p>Hello <b>wor</b>ld</p></body></html>",
	"V<b></b>iagra &#86;iagra &amp; <br>line<div>div</div><td>a</td><th>b</th><li>c",
	"<a href=x>one<img src=y width=10 height=20%></a><a>two</a> after <a>three",
	"<font face=\"Arial, Helvetica\" size=+2>x</font><font face='bad!face' size=-3><font size=7><font size=abc>",
	"<!-- comment --><!--x--><o:p>office</o:p><st1:place>p</st1:place><st12:x><o:/>",
	"<script>var a = '<b>not</b>';</script>text<script/>more</script></script></style>",
	"<template><p>hidden</p></template>shown<embed><object>",
	"a  \t\n b\u00a0\u00a0c\r\n<p> x </p> <br> y <hr>z<pre>p</pre><title>t</title>",
	"<img width=50% height=0><img width=999999999999999999999 height=2><img width=3>",
	"<b><b></b></b></i></i><unknowntag><x-sigsep><nobr>",
	"<p>" + strings.Repeat("word <b>w</b> ", 200) + "</p>",
	"<title>a</title><title>b<a>c</a></title>",
}

func TestReadHTMLMatchesPasses(t *testing.T) {
	for _, src := range readingSeeds {
		for _, max := range []int{1, 7, 40, 4 << 20} {
			checkReading(t, src, max)
		}
	}
}

func FuzzReadHTML(f *testing.F) {
	for _, s := range readingSeeds {
		f.Add(s, uint16(0))
		f.Add(s, uint16(13))
	}
	f.Fuzz(func(t *testing.T, src string, max uint16) {
		m := int(max)
		if m == 0 {
			m = 4 << 20
		}
		checkReading(t, src, m)
	})
}

func TestSANamespaceTag(t *testing.T) {
	for _, n := range []string{"o:p", "o:", "o:/", "o:p/", "o:p//", "st1:place", "st12:x", "st:x", "st1:", "o:a-b_c9",
		"o:a.b", "xo:p", "o:P", "o:p\n", "st1:x/", "so:p", "o", "", "o:\u00e9"} {
		if got, want := saNamespaceTag(n), refNamespace.MatchString(n); got != want {
			t.Errorf("saNamespaceTag(%q) = %v, the regex says %v", n, got, want)
		}
	}
}

func TestImgDim(t *testing.T) {
	for _, s := range []string{"", "0", "10", "10%", "%", "10%%", "x", "1x", " 1", "007", "99999999999999999999", "-1", "+1"} {
		for _, pct := range []int{6, 8} {
			if got, want := imgDim(s, pct), refImgDim(s, pct); got != want {
				t.Errorf("imgDim(%q, %d) = %d, want %d", s, pct, got, want)
			}
		}
	}
}

// maDiff's word tables are pooled: a table grown past maxPooledWords is
// dropped, and no count may carry over from one message to the next.
func TestMADiffReusedTables(t *testing.T) {
	alt := func(text, html string) string {
		return "From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\n" + text + "\r\n" +
			"--b\r\nContent-Type: text/html\r\n\r\n" + html + "\r\n--b--\r\n"
	}
	var many strings.Builder
	for i := range maxPooledWords + 100 {
		many.WriteString("w" + strconv.Itoa(i) + " ")
	}
	s := mustBuild(t, Config{})
	cases := []struct {
		raw        string
		diff       float64
		html, text int
	}{
		{alt("alpha beta", "<p>alpha gamma</p>"), 50, 2, 2},
		{alt("alpha", "<p>"+many.String()+"</p>"), 100, maxPooledWords + 100, 1},
		{alt("alpha beta", "<p>alpha gamma</p>"), 50, 2, 2},
		{alt("one two three", "<p>one two three</p>"), 0, 3, 3},
		{alt("alpha beta", "<p>alpha gamma</p>"), 50, 2, 2},
	}
	for i, c := range cases {
		v := &view{m: filter.NewMessageBytes(filter.Envelope{}, []byte(c.raw), filter.Limits{}), set: s}
		d := v.maDiff()
		v.releaseRendered()
		if d.diff != c.diff || d.html != c.html || d.text != c.text {
			t.Errorf("message %d: %+v, want diff %v, %d HTML and %d text words", i, d, c.diff, c.html, c.text)
		}
	}
}
