package rules

import (
	"io"
	"strings"
	"unsafe"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/portcullis-mail/portcullis/filter"
)

// htmlReading is what one pass of the HTML tokenizer over a part yields
// for every consumer: the text body rules scan (renderHTML's), the text
// SpamAssassin's evals measure (saRenderer's) and HTML.pm's per-part
// results (htmlResult). Tokenizing is most of the cost of each, and a
// message's HTML part is asked for by several rules (the body scan,
// HTML_MESSAGE, MPART_ALT_DIFF, the body evals): it is read once per
// message (view.htmlReading) and the results are kept on the view.
//
// Both texts live in pooled buffers that go back when the view's
// Evaluate returns (releaseRendered); nothing made from them outlives it.
type htmlReading struct {
	res     *htmlResult
	sa      string // saRenderer's text
	body    string // renderHTML's text, when hasBody
	hasBody bool   // the part was read whole (renderHTML reads past the scan limit)
	bufs    [2]*[]byte
}

// htmlReading reads p's decoded text, cut at the scan limit, as HTML.
func (v *view) htmlReading(p *filter.Part) *htmlReading {
	if d, ok := v.sax.htmlDocs[p]; ok {
		return d
	}
	full, _ := p.Text()
	src := v.partText(p)
	d := &htmlReading{}
	var out htmlOutputs
	d.bufs[0] = getBuf()
	out.sa, out.saMax = d.bufs[0], v.set.limits.MaxScanBytes
	if len(src) == len(full) {
		// bodyText renders the whole text, up to one byte past the limit
		// (so that a cut is noticed): the same text here, read once.
		d.bufs[1] = getBuf()
		out.body, out.bodyMax = d.bufs[1], v.set.limits.MaxScanBytes+1
		d.hasBody = true
	}
	d.res = readHTML(src, &out)
	d.sa = unsafe.String(unsafe.SliceData(*out.sa), len(*out.sa))
	if d.hasBody {
		d.body = unsafe.String(unsafe.SliceData(*out.body), len(*out.body))
	}
	if v.sax.htmlDocs == nil {
		v.sax.htmlDocs = map[*filter.Part]*htmlReading{}
	}
	v.sax.htmlDocs[p] = d
	return d
}

// releaseRendered gives the readings' buffers and the body lines' back
// to the pool.
func (v *view) releaseRendered() {
	if v.sax.linesBuf != nil {
		putBuf(v.sax.linesBuf)
		v.sax.linesBuf, v.sax.bodyLines = nil, nil
	}
	for i, bp := range v.sax.bodyBufs {
		if bp != nil {
			putBuf(bp)
			v.sax.bodyBufs[i] = nil
		}
	}
	for _, d := range v.sax.htmlDocs {
		for _, bp := range d.bufs {
			if bp != nil {
				putBuf(bp)
			}
		}
		d.sa, d.body = "", ""
	}
	v.sax.htmlDocs = nil
}

// renderedBody is renderHTML's text of the HTML part p, whose decoded
// text is t: the part's reading's when it read all of t, else rendered
// into the scratch buffer hp.
func (v *view) renderedBody(p *filter.Part, t string, max int, hp *[]byte) string {
	if d := v.htmlReading(p); d.hasBody && max == v.set.limits.MaxScanBytes+1 {
		return d.body
	}
	*hp = renderHTML((*hp)[:0], t, max)
	return unsafe.String(unsafe.SliceData(*hp), len(*hp))
}

// htmlOutputs are the texts readHTML renders: each into its buffer, at
// most its max bytes; a nil buffer is not rendered.
type htmlOutputs struct {
	body, sa       *[]byte
	bodyMax, saMax int
}

// readHTML tokenizes src once and builds from the tokens HTML.pm's
// results and the texts out asks for, each exactly as its own pass would
// (bodyRenderer, saRenderer, the htmlResult builder): every consumer
// keeps its own state (what it skips, where it stops), and only the
// tokens are shared.
func readHTML(src string, out *htmlOutputs) *htmlResult {
	r := newHTMLResult(len(src))
	z := html.NewTokenizer(strings.NewReader(src))
	var br bodyRenderer
	var sr saRenderer
	if out.body != nil {
		br = bodyRenderer{b: (*out.body)[:0], max: out.bodyMax, on: out.bodyMax > 0}
	}
	if out.sa != nil {
		sr = saRenderer{b: (*out.sa)[:0], max: out.saMax, on: out.saMax > 0}
	}
	var lower []byte
	defer func() {
		if out.body != nil {
			*out.body = br.b[:min(len(br.b), br.max)]
		}
		if out.sa != nil {
			*out.sa = sr.b[:min(len(sr.b), sr.max)]
		}
	}()
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			br.end(z.Err())
			r.finish()
			return r
		case html.TextToken:
			t := z.Text()
			br.text(t)
			sr.text(t)
			r.text(t)
		case html.CommentToken:
			r.comment = append(r.comment, string(z.Raw()))
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			// End tags keep no attributes; a start tag's are read until
			// TagAttr says there are no more.
			name, hasAttr := tagName(z, &lower), tt != html.EndTagToken
			a := atom.Lookup(name)
			br.tag(tt, a)
			sr.tag(tt, a)
			r.tag(z, tt, a, name, hasAttr)
		}
	}
}

// renderHTML turns an HTML body into the text a reader sees: the text of
// the document without tags, comments, scripts and styles, block elements
// on lines of their own, entities decoded, at most max bytes, appended to
// b (a scratch buffer: the caller copies what it keeps). Spammers hide
// words from text filters behind tags ("V<b></b>iagra") and entities
// ("&#86;iagra"); rules on the rendered text see through both.
func renderHTML(b []byte, src string, max int) []byte {
	z := html.NewTokenizer(strings.NewReader(src))
	br := bodyRenderer{b: b, max: max + len(b), on: max > 0}
	var lower []byte
	for br.on {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			br.end(z.Err())
			return br.b
		case html.TextToken:
			br.text(z.Text())
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			br.tag(tt, atom.Lookup(tagName(z, &lower)))
		}
	}
	return br.b[:min(len(br.b), br.max)]
}

// tagName is the lower-case name of the tag token z holds, as z.TagName
// returns it but without its copy (TagName copies every name to replace
// NULs: a third of the allocations of reading an HTML part). The name is
// the raw token's bytes, or lower-cased in *buf when it has capitals; it
// lives until the next token. A name with a NUL is TagName's.
func tagName(z *html.Tokenizer, buf *[]byte) []byte {
	raw := z.Raw()
	i := 1 // "<name" or "</name"
	if len(raw) > 1 && raw[1] == '/' {
		i = 2
	}
	j := i
scan:
	for ; j < len(raw); j++ {
		switch raw[j] {
		case ' ', '\n', '\r', '\t', '\f', '/', '>', 0:
			break scan
		}
	}
	if j < len(raw) && raw[j] == 0 {
		name, _ := z.TagName()
		return name
	}
	name := raw[i:j]
	for k, c := range name {
		if 'A' <= c && c <= 'Z' {
			b := append((*buf)[:0], name...)
			for ; k < len(b); k++ {
				if c := b[k]; 'A' <= c && c <= 'Z' {
					b[k] = c + 'a' - 'A'
				}
			}
			*buf = b
			return b
		}
	}
	return name
}

// bodyRenderer is renderHTML's state; on is false once it has max bytes
// (or was never asked for).
type bodyRenderer struct {
	b    []byte
	max  int
	skip int // inside script, style or template: raw text a reader never sees
	on   bool
}

func (br *bodyRenderer) end(err error) {
	if br.on && err != io.EOF {
		br.b = append(br.b, '\n')
	}
	br.on = false
}

func (br *bodyRenderer) text(t []byte) {
	if !br.on || br.skip > 0 {
		return
	}
	// Line breaks in HTML source are spaces on screen; only block
	// elements (below) break lines.
	for len(t) > 0 {
		i := 0
		for i < len(t) && t[i] != '\n' && t[i] != '\r' && t[i] != '\t' {
			i++
		}
		br.b = append(br.b, t[:i]...)
		if i == len(t) {
			break
		}
		br.b = append(br.b, ' ')
		t = t[i+1:]
	}
	br.on = len(br.b) < br.max
}

func (br *bodyRenderer) tag(tt html.TokenType, a atom.Atom) {
	if !br.on {
		return
	}
	switch a {
	case atom.Script, atom.Style, atom.Template:
		if tt == html.StartTagToken {
			br.skip++
		} else if tt == html.EndTagToken && br.skip > 0 {
			br.skip--
		}
	case atom.Br, atom.P, atom.Div, atom.Tr, atom.Li, atom.H1, atom.H2, atom.H3,
		atom.H4, atom.H5, atom.H6, atom.Table, atom.Blockquote, atom.Hr, atom.Ul, atom.Ol, atom.Pre:
		br.b = append(br.b, '\n')
	case atom.Td, atom.Th:
		br.b = append(br.b, ' ')
	}
	br.on = len(br.b) < br.max
}

// saRenderer renders Mail::SpamAssassin::HTML's rendered text, for the eval
// functions that measure it: runs of white space in text become one
// space; br and div add a newline, li, th, td, dt, dd, embed and h1-h6 a
// space, p, hr, blockquote, pre, listing, plaintext, xmp and title a blank
// line, at their start and end tags alike, taking the space before them
// and after them away; script and style text is not shown.
type saRenderer struct {
	b      []byte
	max    int
	skip   int
	lastWS bool // the last piece written was a tag's white space
	on     bool
}

func (sr *saRenderer) text(t []byte) {
	if !sr.on || sr.skip > 0 {
		return
	}
	n := len(sr.b)
	sr.b = appendSquashed(sr.b, t)
	if sr.lastWS && len(sr.b) > n && sr.b[n] == ' ' {
		sr.b = append(sr.b[:n], sr.b[n+1:]...)
	}
	if len(sr.b) > n {
		sr.lastWS = false
	}
	sr.on = len(sr.b) < sr.max
}

func (sr *saRenderer) tag(tt html.TokenType, a atom.Atom) {
	if !sr.on {
		return
	}
	if a == atom.Script || a == atom.Style {
		if tt == html.StartTagToken {
			sr.skip++
		} else if tt == html.EndTagToken && sr.skip > 0 {
			sr.skip--
		}
		return
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
		return
	}
	if !sr.lastWS && len(sr.b) > 0 && sr.b[len(sr.b)-1] == ' ' {
		sr.b = sr.b[:len(sr.b)-1]
	}
	sr.b = append(sr.b, ws...)
	sr.lastWS = true
	sr.on = len(sr.b) < sr.max
}

// appendSquashed appends t with each run of HTML.pm's white space
// (space, \t \n \r \f \v and U+00A0, the regex
// `(?:[ \t\n\r\f\x0b]|\x{a0})+`) as one space. U+00A0 is the bytes C2 A0
// wherever they stand: C2 never continues another character's bytes.
//
// Text is mostly words between single spaces, which stay as they are:
// the bytes between the changes are copied a stretch at a time.
func appendSquashed(b, t []byte) []byte {
	start := 0 // t[start:i] goes to b unchanged
	for i := 0; i < len(t); {
		if !squashByte[t[i]] {
			i++
			continue
		}
		n := htmlSpace(t[i:])
		if n == 0 {
			i++ // a C2 that starts no U+00A0
			continue
		}
		j := i + n
		for n = htmlSpace(t[j:]); n > 0; n = htmlSpace(t[j:]) {
			j += n
		}
		if t[i] == ' ' && j == i+1 {
			i = j // one plain space: nothing to change
			continue
		}
		b = append(b, t[start:i]...)
		b = append(b, ' ')
		start, i = j, j
	}
	return append(b, t[start:]...)
}

// squashByte are the bytes htmlSpace may find white space at.
var squashByte = [256]bool{' ': true, '\t': true, '\n': true, '\r': true, '\f': true, '\v': true, 0xc2: true}

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
