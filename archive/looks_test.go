package archive

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// looksTextRef is looksText a byte at a time, as it was before the
// word-at-a-time scan: the reference the fast one must agree with.
func looksTextRef(h []byte) bool {
	if len(h) == 0 {
		return true
	}
	if bytes.HasPrefix(h, []byte{0xff, 0xfe}) || bytes.HasPrefix(h, []byte{0xfe, 0xff}) {
		return true
	}
	ctl := 0
	for i := 0; i < len(h); {
		c := h[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				return false
			}
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b {
				ctl++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(h[i:])
		if r == utf8.RuneError && size == 1 {
			if len(h)-i < utf8.UTFMax && !utf8.FullRune(h[i:]) {
				break
			}
			return false
		}
		i += size
	}
	return ctl*100 < len(h)
}

func TestLooksText(t *testing.T) {
	prose := bytes.Repeat([]byte("the quarterly report, as agreed.\r\n"), 40)
	for name, c := range map[string]struct {
		h    []byte
		want bool
	}{
		"prose":              {prose, true},
		"NUL at the end":     {append(bytes.Clone(prose), 0), false},
		"NUL in a word":      {append(append(bytes.Clone(prose[:37]), 0), prose...), false},
		"NUL after a borrow": {[]byte("abcdefg\x01\x00bcdefgh"), false},
		"utf-8":              {bytes.Repeat([]byte("Grüße, добрый день — ok. "), 30), true},
		"rune across words":  {[]byte("abcdefg\u00e9bcdefgh"), true},
		"cut rune at end":    {append(bytes.Clone(prose), 0xd0), true},
		"bad utf-8":          {append(bytes.Clone(prose[:13]), 0xff, 'a', 'b'), false},
		"controls, few":      {append(bytes.Clone(prose), 0x01), true},
		"controls, many":     {bytes.Repeat([]byte("abcdefg\x02"), 100), false},
		"DEL":                {bytes.Repeat([]byte("abc\x7fdefg"), 100), true},
		"short":              {[]byte("hi\x00"), false},
	} {
		if got := looksText(c.h); got != c.want || got != looksTextRef(c.h) {
			t.Errorf("%s: looksText = %v, want %v (reference %v)", name, got, c.want, looksTextRef(c.h))
		}
	}
}

// FuzzLooksText holds the word-at-a-time looksText to the reference.
func FuzzLooksText(f *testing.F) {
	f.Add([]byte("the quarterly report\r\n"))
	f.Add([]byte("abcdefg\x01\x00bcdefgh"))
	f.Add([]byte("Grüße, добрый день\xd0"))
	f.Fuzz(func(t *testing.T, h []byte) {
		if got, want := looksText(h), looksTextRef(h); got != want {
			t.Fatalf("looksText(%q) = %v, reference %v", h, got, want)
		}
	})
}
