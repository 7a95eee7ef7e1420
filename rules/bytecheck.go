package rules

import (
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A regex with no literal key may still need a byte that ordinary text
// seldom has: a Cyrillic letter (every one is encoded with lead byte 0xD0
// or 0xD1), a "$", a NUL. A byteCheck is a set of bytes of which every
// match of the regex holds at least one, derived from its syntax tree; a
// value without any of them cannot match, so the regex is not run, and a
// body rule whose set is absent from the whole text is not run on any of
// its lines. It is a necessary condition only, like runCheck.
//
// Each element of a match contributes the bytes of the runes it matched.
// A rune is represented by the first byte of its UTF-8 encoding, and a
// character class by the first bytes of all its runes (the encodings of a
// range of runes start with a range of bytes); a class or literal that
// holds U+FFFD adds 0x80-0xFF as well, because Go reads an invalid byte as
// U+FFFD. A concatenation needs what any one of its elements needs (the
// rarest set is kept), an alternation the union of what each branch
// needs; an element that can match the empty string needs nothing.
//
// For a byte rule (perlbytes.go) the pattern's runes up to 0xFF stand for
// bytes and the text is read as Latin-1: rune r is byte r.

// byteSet is a set of bytes.
type byteSet [4]uint64

func (s *byteSet) add(b byte)      { s[b>>6] |= 1 << (b & 63) }
func (s *byteSet) has(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }
func (s *byteSet) addRange(lo, hi int) { // lo..hi inclusive, within 0..255
	for b := lo; b <= hi; b++ {
		s.add(byte(b))
	}
}
func (s *byteSet) union(o byteSet) {
	for i := range s {
		s[i] |= o[i]
	}
}
func (s *byteSet) intersects(o *byteSet) bool {
	return s[0]&o[0]|s[1]&o[1]|s[2]&o[2]|s[3]&o[3] != 0
}
func (s *byteSet) empty() bool { return s[0]|s[1]|s[2]|s[3] == 0 }

// share estimates how much of ordinary text the set's bytes make up.
func (s *byteSet) share() float64 {
	p := 0.0
	for b := range 256 {
		if s.has(byte(b)) {
			p += byteShare(byte(b))
		}
	}
	return p
}

// textBytes returns the set of bytes t holds.
func textBytes(t string) byteSet {
	var seen [256]bool
	for i := 0; i < len(t); i++ {
		seen[t[i]] = true
	}
	var s byteSet
	for b, in := range seen {
		if in {
			s.add(byte(b))
		}
	}
	return s
}

// maxCheckShare is the largest share of text a byte check's bytes may
// have: beyond it most lines pass and the scan costs more than it saves.
const maxCheckShare = 0.01

type byteCheck struct {
	set byteSet
	in  [256]bool // set, for the scan
	few []byte    // set's bytes when there are at most maxFewBytes: one IndexByte each
}

// maxFewBytes: up to this many bytes, a scan for each with IndexByte
// (vectorized, tens of bytes a nanosecond) beats one look-up per byte; a
// full-text rule such as NULL_IN_BODY (/\x00/) scans the whole message.
const maxFewBytes = 3

// newByteCheck returns the byte check of pattern (Go syntax; latin1 for a
// byte rule), or nil when it has none selective enough.
func newByteCheck(pattern string, latin1 bool) *byteCheck {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	set, ok := needBytes(re.Simplify(), latin1)
	if !ok || set.empty() || set.share() > maxCheckShare {
		return nil
	}
	bc := &byteCheck{set: set}
	for b := range 256 {
		bc.in[b] = set.has(byte(b))
		if bc.in[b] {
			bc.few = append(bc.few, byte(b))
		}
	}
	if len(bc.few) > maxFewBytes {
		bc.few = nil
	}
	return bc
}

// possible reports whether s holds one of the check's bytes: when it does
// not, the regex cannot match s.
func (bc *byteCheck) possible(s string) bool {
	if bc.few != nil {
		for _, b := range bc.few {
			if strings.IndexByte(s, b) >= 0 {
				return true
			}
		}
		return false
	}
	return hasAny(&bc.in, s)
}

// hasAny reports whether s holds a byte of in. The bytes are mostly
// absent: four are tested per branch back.
func hasAny(in *[256]bool, s string) bool {
	for len(s) >= 4 {
		if in[s[0]] || in[s[1]] || in[s[2]] || in[s[3]] {
			return true
		}
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		if in[s[i]] {
			return true
		}
	}
	return false
}

// needBytes returns a set of which every match of re holds a byte, and
// false when some match may hold none of any useful set (an empty match,
// an unknown operator).
func needBytes(re *syntax.Regexp, latin1 bool) (byteSet, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		// Every rune is needed: keep the rarest.
		var best byteSet
		found := false
		for _, r := range re.Rune {
			var s byteSet
			addRunes(&s, r, r, latin1)
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					addRunes(&s, f, f, latin1)
				}
			}
			if s.empty() {
				// No text holds the rune (a byte rule's rune beyond 0xFF):
				// the literal never matches; any set is right.
				return s, true
			}
			if !found || s.share() < best.share() {
				best, found = s, true
			}
		}
		return best, found
	case syntax.OpCharClass:
		var s byteSet
		for i := 0; i+1 < len(re.Rune); i += 2 {
			addRunes(&s, re.Rune[i], re.Rune[i+1], latin1)
		}
		return s, true // an empty class never matches: any set is right
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		var s byteSet
		s.addRange(0, 255)
		if re.Op == syntax.OpAnyCharNotNL {
			s[0] &^= 1 << '\n'
		}
		return s, true
	case syntax.OpCapture, syntax.OpPlus:
		return needBytes(re.Sub[0], latin1)
	case syntax.OpRepeat:
		if re.Min < 1 {
			return byteSet{}, false
		}
		return needBytes(re.Sub[0], latin1)
	case syntax.OpConcat:
		var best byteSet
		found := false
		for _, sub := range re.Sub {
			s, ok := needBytes(sub, latin1)
			if ok && (!found || s.share() < best.share()) {
				best, found = s, true
			}
		}
		return best, found
	case syntax.OpAlternate:
		var all byteSet
		for _, sub := range re.Sub {
			s, ok := needBytes(sub, latin1)
			if !ok {
				return byteSet{}, false
			}
			all.union(s)
		}
		return all, true
	}
	// Empty matches, assertions, star and quest: nothing is needed.
	return byteSet{}, false
}

// addRunes adds the bytes that stand for the runes lo..hi in a text.
func addRunes(s *byteSet, lo, hi rune, latin1 bool) {
	if latin1 {
		if lo <= 0xFF {
			s.addRange(int(lo), int(min(hi, 0xFF)))
		}
		return
	}
	if lo < utf8.RuneSelf {
		s.addRange(int(lo), int(min(hi, utf8.RuneSelf-1)))
		lo = utf8.RuneSelf
	}
	if hi < lo {
		return
	}
	if lo <= utf8.RuneError && utf8.RuneError <= hi {
		s.addRange(0x80, 0xFF) // an invalid byte reads as U+FFFD
	}
	s.addRange(int(leadByte(lo)), int(leadByte(min(hi, unicode.MaxRune))))
}

// leadByte is the first byte of r's UTF-8 encoding (a surrogate, which
// UTF-8 cannot hold, counts by its place in the sequence of runes).
func leadByte(r rune) byte {
	switch {
	case r < 0x800:
		return byte(0xC0 | r>>6)
	case r < 0x10000:
		return byte(0xE0 | r>>12)
	}
	return byte(0xF0 | r>>18)
}
