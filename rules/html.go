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
