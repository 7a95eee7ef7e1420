package links

import (
	"encoding/base64"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/portcullis-mail/portcullis/filter"
)

// Text that mail clients decode in ways the declared charset does not say.
// Each reading below is taken in addition to the text as decoded by its
// charset, the way the most lenient client would read it, so a link is
// found whichever reading a client picks.
//
//   - UTF-7 (RFC 2152), declared or not: Outlook and old browsers decode
//     "+ADw-a href+AD0AIg-http://..." as <a href="http://...">, and spam
//     sends HTML that way to hide its links from filters that do not. A
//     text with a "+A..." run (the UTF-7 form of ASCII punctuation
//     such as < > " ' = : /, or letters) is also read as UTF-7.
//   - UTF-16 without a usable declaration: a BOM, or NULs in every other
//     byte of ASCII text.

// maxEncoded bounds the bytes of one part re-read for another reading.
const maxEncoded = 8 << 20

// readings returns the other readings of a text part worth extracting
// links from (none for ordinary text).
func readings(p *filter.Part, text string) []string {
	var out []string
	cs := p.Charset()
	if isUTF7Charset(cs) || hasUTF7Runs(text) || declaresUTF7(text, p.ContentType == "text/html") {
		if d := decodeUTF7(text); d != text {
			out = append(out, d)
		}
	}
	if !strings.HasPrefix(cs, "utf-16") && looksUTF16(text) {
		if raw, err := io.ReadAll(io.LimitReader(p.Open(), maxEncoded)); err == nil || len(raw) > 0 {
			if d, ok := decodeUTF16(raw); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

func isUTF7Charset(cs string) bool {
	switch cs {
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode20utf7", "x-unicode-2-0-utf-7":
		return true
	}
	return false
}

// hasUTF7Runs reports a "+A" run of at least three base64 characters:
// UTF-7 for ASCII text (its code units start with a zero byte), such as
// "+ADw-" for "<" or "+AGgAdAB0AHA-" for "http". Ordinary text that
// happens to match costs one more reading, nothing else.
func hasUTF7Runs(s string) bool {
	for i := strings.Index(s, "+A"); i >= 0; {
		j := i + 2
		for j < len(s) && j < i+5 && isBase64(s[j]) {
			j++
		}
		if j == i+5 {
			return true
		}
		k := strings.Index(s[i+2:], "+A")
		if k < 0 {
			return false
		}
		i += 2 + k
	}
	return false
}

// declaresUTF7 finds a <meta> charset of UTF-7 in HTML, which clients obey
// over the MIME header.
func declaresUTF7(s string, html bool) bool {
	if !html {
		return false
	}
	head := s[:min(len(s), 8192)]
	i := indexFold(head, "charset")
	for i >= 0 {
		rest := strings.TrimLeft(head[i+len("charset"):], " \t\r\n=\"'")
		if hasPrefixFold(rest, "utf-7") || hasPrefixFold(rest, "utf7") || hasPrefixFold(rest, "unicode-1-1-utf-7") {
			return true
		}
		head = head[i+len("charset"):]
		i = indexFold(head, "charset")
	}
	return false
}

// indexFold is the index of the first instance of sub (lower-case ASCII)
// in s in any case, or -1. It jumps from one first byte of sub to the
// next with strings.IndexByte, where comparing at every byte cost a
// quarter of a million instructions on the first 8 KB of an HTML part.
func indexFold(s, sub string) int {
	if sub == "" {
		return 0
	}
	lo, up := sub[0], sub[0]
	if 'a' <= lo && lo <= 'z' {
		up = lo - ('a' - 'A')
	}
	nextLo, nextUp := -2, -2 // the next index of lo and of up at or after i; -1: none; -2: not searched
	next := func(b byte, i int) int {
		if j := strings.IndexByte(s[i:], b); j >= 0 {
			return i + j
		}
		return -1
	}
	for i := 0; i+len(sub) <= len(s); {
		if nextLo != -1 && nextLo < i {
			nextLo = next(lo, i)
		}
		if nextUp != -1 && nextUp < i {
			nextUp = next(up, i)
		}
		j := nextLo
		if j < 0 || nextUp >= 0 && nextUp < j {
			j = nextUp
		}
		if j < 0 || j+len(sub) > len(s) {
			return -1
		}
		if hasPrefixFold(s[j:], sub) {
			return j
		}
		i = j + 1
	}
	return -1
}

// decodeUTF7 decodes RFC 2152 UTF-7: "+" starts modified base64 of UTF-16
// code units, ended by "-" (dropped) or any other character (kept); "+-"
// is "+". A run that does not decode is kept as written. Other bytes pass.
func decodeUTF7(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		j := i + 1
		for j < len(s) && isBase64(s[j]) {
			j++
		}
		if j == i+1 {
			if j < len(s) && s[j] == '-' {
				b.WriteByte('+')
				i = j
			} else {
				b.WriteByte('+')
			}
			continue
		}
		units, ok := base64Units(s[i+1 : j])
		if !ok {
			b.WriteString(s[i:j])
			i = j - 1
			continue
		}
		for _, r := range utf16.Decode(units) {
			b.WriteRune(r)
		}
		i = j - 1
		if j < len(s) && s[j] == '-' {
			i = j
		}
	}
	return b.String()
}

// base64Units decodes a modified-base64 run (no padding) into the whole
// UTF-16 code units it holds; the bits left over are padding.
func base64Units(run string) ([]uint16, bool) {
	k := len(run) * 6 / 16
	if k == 0 {
		return nil, false
	}
	raw, err := base64.RawStdEncoding.DecodeString(run[:(16*k+5)/6])
	if err != nil || len(raw) < 2*k {
		return nil, false
	}
	units := make([]uint16, k)
	for i := range units {
		units[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
	}
	return units, true
}

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// looksUTF16 reports text whose first bytes are a UTF-16 BOM (shown as
// U+FFFD once mis-decoded) or hold NULs in about every other byte.
func looksUTF16(s string) bool {
	sample := s[:min(len(s), 4096)]
	if strings.HasPrefix(sample, "\uFFFD\uFFFD") || strings.HasPrefix(sample, "\xff\xfe") || strings.HasPrefix(sample, "\xfe\xff") {
		return true
	}
	return len(sample) >= 8 && strings.Count(sample, "\x00") >= len(sample)/3
}

// decodeUTF16 decodes raw as UTF-16, by its BOM or, without one, by where
// the NULs of ASCII text fall.
func decodeUTF16(raw []byte) (string, bool) {
	if len(raw) < 4 {
		return "", false
	}
	le := true
	switch {
	case raw[0] == 0xff && raw[1] == 0xfe:
		raw = raw[2:]
	case raw[0] == 0xfe && raw[1] == 0xff:
		raw, le = raw[2:], false
	default:
		var even, odd int
		for i, c := range raw[:min(len(raw), 4096)] {
			if c == 0 {
				if i%2 == 0 {
					even++
				} else {
					odd++
				}
			}
		}
		if even == 0 && odd == 0 {
			return "", false
		}
		le = odd >= even
	}
	units := make([]uint16, len(raw)/2)
	for i := range units {
		if le {
			units[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
		} else {
			units[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
		}
	}
	var b strings.Builder
	b.Grow(len(units))
	for _, r := range utf16.Decode(units) {
		if r == 0 {
			continue
		}
		if r == utf8.RuneError {
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	return b.String(), true
}
