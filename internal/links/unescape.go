package links

import (
	"html"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// unescapeHTML is html.UnescapeString with its result in dst (appended
// to dst[:0]) where the standard library makes two copies of s (a byte
// slice, then the string). A reference never reaches past the next "&",
// so each one is decoded on its own: the common forms here ("&amp;",
// "&#65;", "&#x41;"), every other by html.UnescapeString on the
// reference alone, which gives what it gives in place. Without a "&",
// out is s and decoded false; else out is dst's bytes, valid until dst
// is written again.
func unescapeHTML(dst []byte, s string) (buf []byte, out string, decoded bool) {
	i := strings.IndexByte(s, '&')
	if i < 0 {
		return dst, s, false
	}
	b := slices.Grow(dst[:0], len(s)) // a reference never decodes longer than it is written
	for {
		b = append(b, s[:i]...)
		s = s[i:]
		n := referenceLen(s)
		b = appendReference(b, s[:n])
		s = s[n:]
		if i = strings.IndexByte(s, '&'); i < 0 {
			b = append(b, s...)
			return b, unsafe.String(unsafe.SliceData(b), len(b)), true
		}
	}
}

// referenceLen is how much of s, which starts with "&", a character
// reference may take: "&", "#" if next, letters and digits, one ";".
func referenceLen(s string) int {
	i := 1
	if i < len(s) && s[i] == '#' {
		i++
	}
	for i < len(s) && isAlnum(s[i]) {
		i++
	}
	if i < len(s) && s[i] == ';' {
		i++
	}
	return i
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// appendReference appends the decoding of ref, one referenceLen's worth.
func appendReference(b []byte, ref string) []byte {
	switch ref {
	case "&amp;":
		return append(b, '&')
	case "&lt;":
		return append(b, '<')
	case "&gt;":
		return append(b, '>')
	case "&quot;":
		return append(b, '"')
	case "&nbsp;":
		return utf8.AppendRune(b, '\u00a0')
	}
	if r, ok := numericReference(ref); ok {
		return utf8.AppendRune(b, r)
	}
	return append(b, html.UnescapeString(ref)...)
}

// numericReference decodes "&#DDD;" and "&#xHHH;" with one to six digits
// to a code point outside the ranges the HTML standard maps to others
// (0x80-0x9F, Windows-1252) or to U+FFFD; ok is false for every other
// form, which html.UnescapeString decodes.
func numericReference(ref string) (rune, bool) {
	if len(ref) < 4 || ref[1] != '#' || ref[len(ref)-1] != ';' {
		return 0, false
	}
	digits, base := ref[2:len(ref)-1], rune(10)
	if digits[0] == 'x' || digits[0] == 'X' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 || len(digits) > 6 {
		return 0, false
	}
	var x rune
	for i := 0; i < len(digits); i++ {
		c := rune(digits[i])
		switch {
		case '0' <= c && c <= '9':
			x = x*base + c - '0'
		case base == 16 && 'a' <= c && c <= 'f':
			x = x*base + c - 'a' + 10
		case base == 16 && 'A' <= c && c <= 'F':
			x = x*base + c - 'A' + 10
		default:
			return 0, false
		}
	}
	if x == 0 || 0x80 <= x && x <= 0x9F || 0xD800 <= x && x <= 0xDFFF || x > 0x10FFFF {
		return 0, false
	}
	return x, true
}
