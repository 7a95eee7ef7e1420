package filter

import (
	"encoding/base64"
	"mime"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"
)

// param is one parameter of a structured header field, as written.
type param struct {
	key   string // lower case, with any "*" and section suffix
	value string // unquoted
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// parseParamHeader splits a Content-Type or Content-Disposition value into
// its main value and every parameter, keeping duplicates and parameters
// that mime.ParseMediaType would refuse. It never fails: mail in the wild
// is malformed, and a malformed header must not hide an attachment name.
//
// Comments (RFC 5322's parenthesised text, allowed by RFC 2045 between
// the tokens) are removed from the main value, and white space around the
// slash is allowed: "(x) multipart / mixed (y); boundary=b" is
// multipart/mixed to a client that reads comments, so it must be to the
// inspector too, or the parts inside go unseen. Parameter values keep
// their parentheses: an unquoted name=a(b).exe is a name to the clients
// that show it.
func parseParamHeader(v string) (main string, params []param) {
	if strings.IndexByte(v, '(') >= 0 {
		head, rest := stripComments(v)
		v = head + rest
	}
	i := 0
	n := len(v)
	for i < n && isWS(v[i]) {
		i++
	}
	start := i
	for i < n && v[i] != ';' && !isWS(v[i]) {
		i++
	}
	main = strings.ToLower(v[start:i])
	if j := skipWS(v, i); !strings.Contains(main, "/") && j < n && v[j] == '/' || strings.HasSuffix(main, "/") {
		// "type / subtype", "type /subtype", "type/ subtype"
		if !strings.HasSuffix(main, "/") {
			main += "/"
			i = j + 1
		}
		i = skipWS(v, i)
		ss := i
		for i < n && v[i] != ';' && !isWS(v[i]) {
			i++
		}
		main += strings.ToLower(v[ss:i])
	}
	for i < n {
		for i < n && (isWS(v[i]) || v[i] == ';') {
			i++
		}
		ks := i
		for i < n && v[i] != '=' && v[i] != ';' && !isWS(v[i]) {
			i++
		}
		key := strings.ToLower(v[ks:i])
		for i < n && isWS(v[i]) {
			i++
		}
		if i >= n || v[i] != '=' {
			if key != "" && i < n && v[i] != ';' {
				// A bare word: part of a broken main value. Skip it.
				continue
			}
			continue
		}
		i++ // '='
		for i < n && isWS(v[i]) {
			i++
		}
		var val string
		if i < n && v[i] == '"' {
			i++
			var b strings.Builder
			for i < n && v[i] != '"' {
				if v[i] == '\\' && i+1 < n {
					i++
				}
				b.WriteByte(v[i])
				i++
			}
			i++ // closing quote, if any
			val = b.String()
		} else {
			vs := i
			for i < n && v[i] != ';' {
				i++
			}
			val = strings.TrimSpace(v[vs:i])
		}
		if key != "" {
			params = append(params, param{key: key, value: val})
		}
	}
	return main, params
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipWS(v string, i int) int {
	for i < len(v) && isWS(v[i]) {
		i++
	}
	return i
}

// stripComments returns the main value at the head of v (up to the first
// ';' outside a comment) with its comments, nested or not, replaced by a
// space, and the rest of v as it is. A comment left open runs to the end.
func stripComments(v string) (head, rest string) {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case depth > 0 && c == '\\' && i+1 < len(v):
			i++
		case c == '(':
			if depth == 0 {
				b.WriteByte(' ')
			}
			depth++
		case depth > 0 && c == ')':
			depth--
		case depth > 0:
		case c == ';':
			return b.String(), v[i:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// paramValue returns the first plain value of key, decoded.
func paramValue(params []param, key string) string {
	for _, p := range params {
		if p.key == key {
			return p.value
		}
	}
	vals := extendedValues(params, key)
	if len(vals) > 0 {
		return vals[0]
	}
	return ""
}

// candidateNames returns every file name params carry under the given keys
// (e.g. "filename" and "name"): plain values with RFC 2047 words decoded,
// RFC 2231 extended values and continuations, in the order found.
func candidateNames(params []param, keys ...string) []string {
	var out []string
	for _, key := range keys {
		for _, p := range params {
			if p.key == key {
				v := decodeWords(p.value)
				out = append(out, v)
				if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
					// filename='x.exe': some clients strip single quotes too.
					out = append(out, v[1:len(v)-1])
				}
			}
		}
		out = append(out, extendedValues(params, key)...)
	}
	return out
}

func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return lenientWords(s)
	}
	return d
}

// encodedWord matches an RFC 2047 encoded word, charset with an optional
// RFC 2231 language ("=?UTF-8*en?Q?...?=").
var encodedWord = regexp.MustCompile(`=\?([^?*\s]*)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=`)

// lenientWords decodes what mime.WordDecoder refused (an unknown charset,
// a language tag) the way a lenient client shows it: the bytes of each
// word, in its charset when known, with the space between two words
// dropped.
func lenientWords(s string) string {
	var b strings.Builder
	last := 0
	prevWord := false
	for _, m := range encodedWord.FindAllStringSubmatchIndex(s, 64) {
		between := s[last:m[0]]
		if !(prevWord && strings.TrimSpace(between) == "") {
			b.WriteString(between)
		}
		cs, enc, text := s[m[2]:m[3]], s[m[4]:m[5]], s[m[6]:m[7]]
		var raw []byte
		if enc == "b" || enc == "B" {
			raw, _ = base64.StdEncoding.DecodeString(text)
			if raw == nil {
				raw, _ = base64.RawStdEncoding.DecodeString(strings.TrimRight(text, "="))
			}
		} else {
			raw = qDecode(text)
		}
		b.WriteString(toUTF8(cs, string(raw)))
		last, prevWord = m[1], true
	}
	b.WriteString(s[last:])
	return b.String()
}

// qDecode undoes RFC 2047 Q encoding, keeping a bad escape as it is.
func qDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(s):
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// extendedValues assembles RFC 2231 forms of key: key*=charset'lang'pct,
// and the continuations key*0, key*0*, key*1 … put back in section order.
func extendedValues(params []param, key string) []string {
	var out []string
	type section struct {
		n       int
		value   string
		encoded bool
	}
	var sections []section
	for _, p := range params {
		if !strings.HasPrefix(p.key, key+"*") {
			continue
		}
		rest := p.key[len(key)+1:]
		if rest == "" {
			out = append(out, decode2231(p.value, true))
			continue
		}
		enc := strings.HasSuffix(rest, "*")
		num, err := strconv.Atoi(strings.TrimSuffix(rest, "*"))
		if err != nil || num < 0 || num > 10000 {
			continue
		}
		sections = append(sections, section{n: num, value: p.value, encoded: enc})
	}
	if len(sections) > 0 {
		sort.SliceStable(sections, func(i, j int) bool { return sections[i].n < sections[j].n })
		var raw strings.Builder
		cs := ""
		for i, s := range sections {
			v := s.value
			if s.encoded {
				if i == 0 {
					if p := strings.SplitN(v, "'", 3); len(p) == 3 {
						cs, v = p[0], p[2]
					}
				}
				if u, err := url.PathUnescape(v); err == nil {
					v = u
				}
			}
			raw.WriteString(v)
		}
		out = append(out, toUTF8(cs, raw.String()))
	}
	return out
}

// decode2231 decodes charset'lang'percent-encoded text.
func decode2231(v string, extended bool) string {
	if !extended {
		return v
	}
	p := strings.SplitN(v, "'", 3)
	if len(p) != 3 {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
		return v
	}
	u, err := url.PathUnescape(p[2])
	if err != nil {
		u = p[2]
	}
	return toUTF8(p[0], u)
}

func toUTF8(cs, s string) string {
	cs = strings.ToLower(strings.TrimSpace(cs))
	if cs == "" || cs == "utf-8" || cs == "us-ascii" || cs == "utf8" {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	r, err := charset.Reader(cs, strings.NewReader(s))
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil || b.Len() > 64<<10 {
			break
		}
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}
