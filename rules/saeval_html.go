package rules

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Ports of Plugin::HTMLEval over the per-part results of
// Mail::SpamAssassin::HTML, and of the body-text checks of
// Plugin::BodyEval and Plugin::MIMEEval.

// htmlResult is what Mail::SpamAssassin::HTML records for one text/html
// part; only the results the ported functions read.
type htmlResult struct {
	inside                      map[string]int // tag → open count (never below 0); present once seen
	tags, tagsSeen              int
	elements, elementsSeen      int
	closedExtra                 int
	length                      int // bytes of HTML source
	imageArea                   int
	minSize, maxSize            int
	fontFaceBad                 bool
	htmlLength, nonSpaceLen     int // rendered text
	hasTags, hasElem, hasTagsSn bool
	embeds                      bool
	obfuscation                 int // text pieces that start a word the piece before ends

	// For obfuscation: what the last piece of rendered text was.
	hasPiece, lastEndsWord, lastWS bool

	// html_text_match's texts: each comment as written ("<!--" and "-->"
	// included), the text of each <a> (an <img> inside it adds "<img>\n"),
	// the text of each <title>.
	comment, anchor, title []string

	// While reading: the text of the last anchor and title so far (kept
	// in anchor and title by finish), the open count of a and title, and
	// script and style depth.
	anchorBuf, titleBuf []byte
	inA, inTitle, skip  int
}

// saHTMLElements are HTML.pm's %elements: tags counted as valid HTML.
var saHTMLElements = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields(`a abbr acronym address area b base bdo big blockquote body br button caption cite code col colgroup dd del dfn div dl dt em fieldset form h1 h2 h3 h4 h5 h6 head hr html i img input ins kbd label legend li link map meta noscript object ol optgroup option p param pre q samp script select small span strong style sub sup table tbody td textarea tfoot th thead title tr tt ul var
		applet basefont center dir font frame frameset iframe isindex menu noframes s strike u nobr x-sigsep x-tab`) {
		m[t] = true
	}
	return m
}()

var (
	saFontFace = regexp.MustCompile(`(?i)^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?$`)
)

// htmlParts parses every text/html leaf part (or part named *.htm, *.html)
// whose decoded text is not empty, as Message::Node::rendered does.
func (v *view) htmlParts() []*htmlResult {
	if v.html != nil {
		return *v.html
	}
	var out []*htmlResult
	parts, _ := v.m.Parts()
	for _, p := range parts {
		if len(p.Children) > 0 || p.IsMultipart() {
			continue
		}
		effective := p.ContentType
		if n := p.Filename(); hasSuffixFold(n, ".htm") || hasSuffixFold(n, ".html") || hasSuffixFold(n, ".shtml") || hasSuffixFold(n, ".shtm") {
			effective = "text/html"
		}
		if effective != "text/html" {
			continue
		}
		if v.partText(p) == "" {
			continue
		}
		out = append(out, v.htmlReading(p).res)
	}
	v.html = &out
	return out
}

// hasSuffixFold reports whether s ends with suffix, a lower-case ASCII
// string, in any case.
func hasSuffixFold(s, suffix string) bool {
	if len(s) < len(suffix) {
		return false
	}
	s = s[len(s)-len(suffix):]
	for i := 0; i < len(suffix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != suffix[i] {
			return false
		}
	}
	return true
}

func newHTMLResult(length int) *htmlResult {
	return &htmlResult{inside: map[string]int{}, length: length, minSize: 3, maxSize: 3}
}

// text takes a text token.
func (r *htmlResult) text(t []byte) {
	if r.skip > 0 {
		return
	}
	r.textPiece(t)
	// The visible text's length and its bytes other than white space,
	// counted as it comes (no copy of it).
	r.htmlLength += len(t)
	r.nonSpaceLen += len(t)
	for _, c := range t {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			r.nonSpaceLen--
		}
	}
	if r.inA > 0 && len(r.anchor) > 0 {
		r.anchorBuf = append(r.anchorBuf, t...)
	}
	if r.inTitle > 0 && len(r.title) > 0 {
		r.titleBuf = append(r.titleBuf, t...)
	}
}

// tag takes a start, end or self-closing tag token: name as the
// tokenizer gives it (lower case), a its atom (0 for none).
func (r *htmlResult) tag(z *html.Tokenizer, tt html.TokenType, a atom.Atom, name []byte, hasAttr bool) {
	var n string
	if a != 0 {
		n = a.String() // the atom's own string: no copy
	} else {
		n = string(name)
	}
	num := 1
	if tt == html.EndTagToken {
		num = -1
	}
	if a == atom.Script || a == atom.Style {
		if num == 1 && tt != html.SelfClosingTagToken {
			r.skip++
		} else if num == -1 && r.skip > 0 {
			r.skip--
		}
	}
	r.count(z, n, num, hasAttr)
	if saHTMLWhitespace[n] {
		r.hasPiece, r.lastEndsWord, r.lastWS = true, false, true
	}
}

// count is HTML.pm's tag handler: the counts, open tags and the
// attributes its results read (font face and size, img width and height).
func (r *htmlResult) count(z *html.Tokenizer, name string, num int, hasAttr bool) {
	ns := saNamespaceTag(name)
	old, seen := r.inside[name]
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
	now := old + num
	if now < 0 {
		now = 0
		r.closedExtra++
	}
	r.inside[name] = now
	switch name {
	case "a":
		r.inA = now
	case "title":
		r.inTitle = now
	}
	if ns || num != 1 {
		return
	}
	switch name {
	case "font":
		face, size, hasFace, hasSize := tagAttrs(z, hasAttr, "face", "size")
		if hasFace && !saFontFace.MatchString(face) {
			r.fontFaceBad = true
		}
		if size, ok := fontSize(size); hasSize && ok {
			if size > r.maxSize {
				r.maxSize = size
			} else if size < r.minSize {
				r.minSize = size
			}
		}
	case "a":
		r.flushAnchor()
		r.anchor = append(r.anchor, "")
	case "title":
		r.flushTitle()
		r.title = append(r.title, "")
	case "object", "embed":
		r.embeds = true
	case "img":
		if r.inA > 0 && len(r.anchor) > 0 {
			r.anchorBuf = append(r.anchorBuf, "<img>\n"...)
		}
		w, h, wok, hok := tagAttrs(z, hasAttr, "width", "height")
		if wok && hok {
			r.imageArea += imgDim(w, 8) * imgDim(h, 6)
		}
	}
}

// fontSize is a font tag's size as HTML.pm reads it: +n and -n relative
// to 3; ok is false when it is not a number.
func fontSize(s string) (size int, ok bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "+"))
	switch {
	case err != nil:
		return 0, false
	case strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"):
		return 3 + n, true
	}
	return n, true
}

// tagAttrs returns the values of the attributes named a and b of the
// tag token z holds, the last of each when repeated; only those are
// copied.
func tagAttrs(z *html.Tokenizer, more bool, a, b string) (va, vb string, oka, okb bool) {
	for more {
		var k, val []byte
		k, val, more = z.TagAttr()
		switch string(k) {
		case a:
			va, oka = string(val), true
		case b:
			vb, okb = string(val), true
		}
	}
	return va, vb, oka, okb
}

// finish writes the last anchor's and title's text.
func (r *htmlResult) finish() {
	r.flushAnchor()
	r.flushTitle()
}

func (r *htmlResult) flushAnchor() {
	if len(r.anchor) > 0 && len(r.anchorBuf) > 0 {
		r.anchor[len(r.anchor)-1] = string(r.anchorBuf)
	}
	r.anchorBuf = r.anchorBuf[:0]
}

func (r *htmlResult) flushTitle() {
	if len(r.title) > 0 && len(r.titleBuf) > 0 {
		r.title[len(r.title)-1] = string(r.titleBuf)
	}
	r.titleBuf = r.titleBuf[:0]
}

// saNamespaceTag reports whether a tag name is an Office namespace tag,
// as HTML.pm's /^(?:o|st\d):[\w-]+\/?$/ (ASCII \w and \d) decides.
func saNamespaceTag(n string) bool {
	var rest string
	switch {
	case len(n) > 2 && n[0] == 'o' && n[1] == ':':
		rest = n[2:]
	case len(n) > 4 && n[0] == 's' && n[1] == 't' && n[2] >= '0' && n[2] <= '9' && n[3] == ':':
		rest = n[4:]
	default:
		return false
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// saHTMLWhitespace are HTML.pm's %elements_whitespace: tags that add
// white space to the rendered text.
var saHTMLWhitespace = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields("br div li th td dt dd p hr blockquote pre embed listing plaintext xmp title h1 h2 h3 h4 h5 h6") {
		m[t] = true
	}
	return m
}()

// textPiece follows HTML::html_text's obfuscation count: a piece of text
// that starts with a word character (not white space, not ASCII
// punctuation) right after one that ended with one, as in
// "V<b></b>iagra". Pieces are as display_text keeps them: white space
// runs squashed to one space, a leading space dropped after a tag's
// white space.
func (r *htmlResult) textPiece(t []byte) {
	first, _ := utf8.DecodeRune(t)
	if len(t) > 0 && r.hasPiece && r.lastEndsWord && saWordRune(first) {
		r.obfuscation++
	}
	// The piece's last character once squashed: a space when it ends in
	// white space, unless it is all white space dropped after a tag.
	end := bytes.TrimRightFunc(t, saHTMLSpaceRune)
	switch {
	case len(end) < len(t) && (len(end) > 0 || !r.lastWS):
		r.lastEndsWord = false // ends with " "
	case len(end) == 0:
		r.lastEndsWord = false // an empty piece
	default:
		last, _ := utf8.DecodeLastRune(end)
		r.lastEndsWord = saWordRune(last)
	}
	r.hasPiece, r.lastWS = true, false
}

func saHTMLSpaceRune(c rune) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == 0xa0
}

// saWordRune: not white space and not ASCII punctuation.
func saWordRune(c rune) bool {
	if c == utf8.RuneError || unicode.IsSpace(c) {
		return false
	}
	return !(c >= 0x21 && c <= 0x2f || c >= 0x3a && c <= 0x40 || c >= 0x5b && c <= 0x60 || c >= 0x7b && c <= 0x7e)
}

// imgDim reads an img width or height as HTML.pm does: a percentage of an
// 800x600 screen, 200 when missing or zero.
func imgDim(s string, pct int) int {
	digits := strings.TrimSuffix(s, "%")
	n := 0
	if digits != "" && strings.Trim(digits, "0123456789") == "" {
		n, _ = strconv.Atoi(digits)
		if len(digits) < len(s) {
			n *= pct
		}
	}
	if n <= 0 {
		n = 200
	}
	return n
}

// htmlRangeKeys are the results html_range reads; ok false when the
// result is not defined for the part.
var htmlRangeKeys = map[string]func(r *htmlResult) (float64, bool){
	"length":     func(r *htmlResult) (float64, bool) { return float64(r.length), true },
	"max_size":   func(r *htmlResult) (float64, bool) { return float64(r.maxSize), true },
	"min_size":   func(r *htmlResult) (float64, bool) { return float64(r.minSize), true },
	"image_area": func(r *htmlResult) (float64, bool) { return float64(r.imageArea), true },
	"closed_extra_ratio": func(r *htmlResult) (float64, bool) {
		return ratio(r.closedExtra, r.tags, r.hasTags)
	},
	"bad_tag_ratio": func(r *htmlResult) (float64, bool) {
		return ratio(r.tags-r.elements, r.tags, r.hasTags && r.hasElem)
	},
	"obfuscation_ratio": func(r *htmlResult) (float64, bool) {
		return ratio(r.obfuscation, r.tags, r.hasTags && r.obfuscation > 0)
	},
	"non_element_ratio": func(r *htmlResult) (float64, bool) {
		return ratio(r.tagsSeen-r.elementsSeen, r.tagsSeen, r.hasTagsSn && r.hasElem)
	},
}

func ratio(a, b int, ok bool) (float64, bool) {
	if !ok || b == 0 {
		return 0, false
	}
	return float64(a) / float64(b), true
}

func anyHTML(v *view, fn func(r *htmlResult) bool) bool {
	for _, r := range v.htmlParts() {
		if fn(r) {
			return true
		}
	}
	return false
}

func init() {
	saEvals["html_test"] = func(_ *saConf, args []string) (evalFunc, error) {
		switch argString(args, 0) {
		case "html":
			return func(v *view) bool { return len(v.htmlParts()) > 0 }, nil
		case "embeds":
			return func(v *view) bool { return anyHTML(v, func(r *htmlResult) bool { return r.embeds }) }, nil
		case "font_face_bad":
			return func(v *view) bool { return anyHTML(v, func(r *htmlResult) bool { return r.fontFaceBad }) }, nil
		}
		return nil, errArgs(args)
	}
	saEvals["html_text_match"] = func(_ *saConf, args []string) (evalFunc, error) {
		var get func(r *htmlResult) []string
		switch argString(args, 0) {
		case "comment":
			get = func(r *htmlResult) []string { return r.comment }
		case "anchor":
			get = func(r *htmlResult) []string { return r.anchor }
		case "title":
			get = func(r *htmlResult) []string { return r.title }
		default:
			return nil, errArgs(args)
		}
		// The argument is a bare pattern (compile_regexp without
		// delimiters).
		match, _, err := saMatcher("/" + strings.ReplaceAll(argString(args, 1), "/", `\/`) + "/")
		if err != nil {
			return nil, err
		}
		return func(v *view) bool {
			return anyHTML(v, func(r *htmlResult) bool {
				for _, s := range get(r) {
					if match(s) {
						return true
					}
				}
				return false
			})
		}, nil
	}
	saEvals["html_tag_exists"] = func(_ *saConf, args []string) (evalFunc, error) {
		tag := argString(args, 0)
		return func(v *view) bool {
			return anyHTML(v, func(r *htmlResult) bool { _, ok := r.inside[tag]; return ok })
		}, nil
	}
	saEvals["html_tag_balance"] = func(_ *saConf, args []string) (evalFunc, error) {
		tag := argString(args, 0)
		m := regexp.MustCompile(`^\s*(==|!=|<=|>=|<|>)\s*(-?\d+)\s*$`).FindStringSubmatch(argString(args, 1))
		if m == nil {
			return nil, errArgs(args)
		}
		n, _ := strconv.Atoi(m[2])
		op := m[1]
		return func(v *view) bool {
			return anyHTML(v, func(r *htmlResult) bool {
				x, ok := r.inside[tag]
				return ok && compareInt(x, op, n)
			})
		}, nil
	}
	saEvals["html_image_only"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, 0)
		hi, err2 := argFloat(args, 1, 0)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			return anyHTML(v, func(r *htmlResult) bool {
				_, img := r.inside["img"]
				return img && float64(r.length) > lo && float64(r.length) <= hi
			})
		}, nil
	}
	saEvals["html_image_ratio"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, 0)
		hi, err2 := argFloat(args, 1, 0)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			return anyHTML(v, func(r *htmlResult) bool {
				if r.imageArea <= 0 {
					return false
				}
				x := float64(r.nonSpaceLen) / float64(r.imageArea)
				return x > lo && x <= hi
			})
		}, nil
	}
	saEvals["html_range"] = func(_ *saConf, args []string) (evalFunc, error) {
		get, ok := htmlRangeKeys[argString(args, 0)]
		lo, err1 := argFloat(args, 1, 0)
		hi, err2 := argFloat(args, 2, 1e300)
		if !ok || err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			return anyHTML(v, func(r *htmlResult) bool {
				x, ok := get(r)
				return ok && x > lo && x <= hi
			})
		}, nil
	}
	saEvals["tvd_vertical_words"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, 0)
		hi, err2 := argFloat(args, 1, 0)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		if hi >= 100 {
			hi = 101
		}
		return func(v *view) bool {
			x := float64(v.verticalWords())
			return x >= lo && x < hi
		}, nil
	}
	saEvals["check_for_uppercase"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, 0)
		hi, err2 := argFloat(args, 1, 0)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			x := v.uppercase()
			return x > lo && x <= hi
		}, nil
	}
}

func compareInt(x int, op string, n int) bool {
	switch op {
	case "==":
		return x == n
	case "!=":
		return x != n
	case "<":
		return x < n
	case "<=":
		return x <= n
	case ">":
		return x > n
	}
	return x >= n
}

// verticalWords is BodyEval::tvd_vertical_words' measure: the largest
// percentage of spaces to other characters on a body line over 5 bytes,
// -1 when there is none.
func (v *view) verticalWords() int {
	if v.sax.vertical != nil {
		return *v.sax.vertical
	}
	x := v.measureVerticalWords()
	v.sax.vertical = &x
	return x
}

func (v *view) measureVerticalWords() int {
	best := -1
	for _, l := range v.saBodyLines() {
		if len(l) <= 5 {
			continue
		}
		spaces := strings.Count(l, " ")
		non := len(l) - spaces
		pct := 100
		if spaces <= non && non != 0 {
			pct = 100 * spaces / non
		}
		best = max(best, pct)
	}
	return best
}

var saShiftJIS = regexp.MustCompile(`(?s)\x1b\$B.*\x1b\(B`)

// reSpaces are the bytes of Go's \s (RE2: no \v).
const reSpaces = " \t\n\f\r"

// spacedLine is MIMEEval's /\S\s+\S/: white space with something on
// either side. Every byte that is not \s belongs to a character that is
// \S (an invalid byte reads as U+FFFD), so a line trimmed of \s at both
// ends matches when it holds any \s at all.
func spacedLine(l string) bool {
	return strings.ContainsAny(strings.Trim(l, reSpaces), reSpaces)
}

// base64Line is MIMEEval's /^(?:[A-Za-z0-9+\/=]{60,76} ){2}/: a line
// that starts with two runs of 60 to 76 base64 characters, each followed
// by a space. A run cannot end before a base64 character, so each is the
// longest one there.
func base64Line(l string) bool {
	for range 2 {
		n := 0
		for n < len(l) && isBase64Byte(l[n]) {
			n++
		}
		if n < 60 || n > 76 || n == len(l) || l[n] != ' ' {
			return false
		}
		l = l[n+1:]
	}
	return true
}

func isBase64Byte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}

// uppercase is MIMEEval::check_for_uppercase's measure: the percentage of
// capitals among letters and digits on body lines with a space inside,
// 0 under 200 bytes or for charsets where capitals mislead.
func (v *view) uppercase() float64 {
	// Three rules ask (__UPPERCASE_25_50 and the like): measure once.
	if v.sax.uppercase != nil {
		return *v.sax.uppercase
	}
	x := v.measureUppercase()
	v.sax.uppercase = &x
	return x
}

// caseClass is 1 for the bytes measureUppercase counts as lower case (a
// to z, and digits), 2 for upper case (A to Z).
var caseClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 2
	}
	return t
}()

func (v *view) measureUppercase() float64 {
	if v.charsetLikelyToFPAsCaps() {
		return 0
	}
	length, lower, upper := 0, 0, 0
	for _, l := range v.saBodyLines() {
		if !spacedLine(l) || base64Line(l) {
			continue
		}
		if strings.IndexByte(l, 0x1b) >= 0 { // the regex starts with ESC; replacing copies
			l = saShiftJIS.ReplaceAllString(l, "")
		}
		length += len(l)
		for i := 0; i < len(l); i++ {
			k := caseClass[l[i]] // without branches: a text's letters are a coin toss for them
			lower += int(k & 1)
			upper += int(k >> 1)
		}
	}
	if length < 200 || upper+lower == 0 {
		return 0
	}
	return 100 * float64(upper) / float64(upper+lower)
}

var saCTCharset = regexp.MustCompile(`(?i)charset="([^"]+)"|charset='([^']+)'|charset=(\S+)`)

func (v *view) charsetLikelyToFPAsCaps() bool {
	var charsets []string
	if m := saCTCharset.FindStringSubmatch(v.saGet("Content-Type")); m != nil {
		charsets = append(charsets, m[1]+m[2]+m[3])
	}
	parts, _ := v.m.Parts()
	for _, p := range parts {
		if c := p.Params["charset"]; c != "" {
			charsets = append(charsets, strings.ToLower(c))
		}
	}
	for _, c := range charsets {
		if m := saCapsCharsets.FindString(c); m == c {
			return true
		}
	}
	return false
}
