package rules

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// A keyed body rule need not run over the whole line where its key occurs
// when its regex can only match a bounded number of bytes: every match
// contains an occurrence of a key (that is what the prefilter's keys are),
// so a match that contains the occurrence found lies within maxLen bytes
// of it, and testing that window for every occurrence tests every match.
//
// The window is widened until its edges cannot change what the regex sees
// there: an edge never splits a UTF-8 sequence (a cut rune would decode as
// U+FFFD), and never sits next to a word byte, so \b and \B read the same
// at the window's edge as in the line (the line's edges and every non-word
// byte are non-word alike). Regexes with ^, $, \A or \z are not windowed:
// a window's edge is not a line's edge.

// maxWindow is the longest match a windowed rule may have; longer ones run
// on the whole line.
const maxWindow = 256

// windowLen returns the most bytes a match of pattern can span, or 0 when
// it is unbounded, longer than maxWindow, or uses a line or text anchor.
func windowLen(pattern string) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0
	}
	n, ok := maxLen(re)
	if !ok || n <= 0 || n > maxWindow {
		return 0
	}
	return n
}

// maxLen returns the most bytes re can match; ok is false when that is
// unbounded (or beyond maxWindow) or re holds an anchor.
func maxLen(re *syntax.Regexp) (n int, ok bool) {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0, true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			n += runeMax(r, re.Flags&syntax.FoldCase != 0)
		}
		return n, n <= maxWindow
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0, true
		}
		return maxRuneLen(re.Rune[len(re.Rune)-1]), true
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax, true
	case syntax.OpCapture, syntax.OpQuest:
		return maxLen(re.Sub[0])
	case syntax.OpRepeat:
		if re.Max < 0 || re.Max > maxWindow {
			return 0, false
		}
		m, ok := maxLen(re.Sub[0])
		if !ok || m*re.Max > maxWindow {
			return 0, false
		}
		return m * re.Max, true
	case syntax.OpConcat:
		for _, s := range re.Sub {
			m, ok := maxLen(s)
			if !ok {
				return 0, false
			}
			if n += m; n > maxWindow {
				return 0, false
			}
		}
		return n, true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			m, ok := maxLen(s)
			if !ok {
				return 0, false
			}
			n = max(n, m)
		}
		return n, true
	}
	// OpStar, OpPlus, OpRepeat without a maximum, and the anchors.
	return 0, false
}

// runeMax is the longest UTF-8 encoding of r, or of any rune it folds to.
func runeMax(r rune, fold bool) int {
	n := maxRuneLen(r)
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			n = max(n, maxRuneLen(f))
		}
	}
	return n
}

// maxRuneLen is the length of r in UTF-8; an invalid rune (U+FFFD stands
// for one invalid byte) counts as the longest.
func maxRuneLen(r rune) int {
	if n := utf8.RuneLen(r); n > 0 {
		return n
	}
	return utf8.UTFMax
}

func isWordByte(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

func isContinuation(b byte) bool { return b&0xC0 == 0x80 }

// window returns the part of text[lo:hi] (one line) that holds every match
// of at most n bytes containing text[s:e], its edges moved outwards off
// UTF-8 continuation bytes and word bytes (see above).
func window(text string, lo, hi, s, e, n int) (int, int) {
	ws, we := max(lo, min(s, e-n)), min(hi, max(e, s+n))
	for ws > lo && (isContinuation(text[ws]) || isWordByte(text[ws-1])) {
		ws--
	}
	for we < hi && (isContinuation(text[we]) || isWordByte(text[we])) {
		we++
	}
	return ws, we
}
