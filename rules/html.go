package rules

import (
	"io"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// renderHTML turns an HTML body into the text a reader sees: the text of
// the document without tags, comments, scripts and styles, block elements
// on lines of their own, entities decoded, at most max bytes, appended to
// b (a scratch buffer: the caller copies what it keeps). Spammers hide
// words from text filters behind tags ("V<b></b>iagra") and entities
// ("&#86;iagra"); rules on the rendered text see through both.
func renderHTML(b []byte, src string, max int) []byte {
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

// saRenderHTML is Mail::SpamAssassin::HTML's rendered text, for the eval
// functions that measure it: runs of white space in text become one
// space; br and div add a newline, li, th, td, dt, dd, embed and h1-h6 a
// space, p, hr, blockquote, pre, listing, plaintext, xmp and title a blank
// line, at their start and end tags alike, taking the space before them
// and after them away; script and style text is not shown.
func saRenderHTML(src string, max int) string {
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

// appendSquashed appends t with each run of HTML.pm's white space
// (space, \t \n \r \f \v and U+00A0, the regex
// `(?:[ \t\n\r\f\x0b]|\x{a0})+`) as one space. U+00A0 is the bytes C2 A0
// wherever they stand: C2 never continues another character's bytes.
func appendSquashed(b, t []byte) []byte {
	for i := 0; i < len(t); {
		if n := htmlSpace(t[i:]); n > 0 {
			for n > 0 {
				i += n
				n = htmlSpace(t[i:])
			}
			b = append(b, ' ')
			continue
		}
		b = append(b, t[i])
		i++
	}
	return b
}

// htmlSpace is the length of the white space t starts with (0 if none).
func htmlSpace(t []byte) int {
	if len(t) == 0 {
		return 0
	}
	switch t[0] {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return 1
	case 0xc2:
		if len(t) > 1 && t[1] == 0xa0 {
			return 2
		}
	}
	return 0
}
