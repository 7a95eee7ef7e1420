package rules

import (
	"regexp"
	"regexp/syntax"
	"strconv"
	"unicode/utf8"

	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
	"github.com/portcullis-mail/portcullis/rules/internal/literal"
)

// A keyed body rule whose matches are unbounded is tested on the whole
// line where its key occurs, and Go's regexp tries every position of that
// line (a 2 KB paragraph) as a start. Many SpamAssassin regexes start with
// a short, bounded head that holds a key: \b(?:our company|we) ...,
// \b(?:funds|money|bank)\s... . Every match then starts at most span bytes
// before the end of a key occurrence (span: the head's longest match) and
// at or before its start, so only those starts need trying. A lead is such
// a rule's head keys and span, and a regex anchored at one start that
// tries the following span starts: \A(?s:.)(?s:.){0,span}(?:R) run on the
// line from the byte before the first start (the byte before is read so
// that \b and \B see it; ^ and \A do not occur in a bounded head). Starts
// inside a UTF-8 sequence are never tried by Go either, and starting on
// such a byte the extra rune read is one invalid byte, as Go reads it.
// The rule's keys become the head's when those are no commoner
// (literal.Rarity).
//
// A backtracking rule leads with its RE2 superset: no superset match from
// any start means no match; a superset match sends the whole line to the
// backtracking engine.

// maxLeadSpan bounds a lead's span: each start tried costs the regex a
// thread.
const maxLeadSpan = 64

type lead struct {
	span int
	at0  *regexp.Regexp // \A(?s:.){0,span}(?:R): starts from the line's first byte
	at1  *regexp.Regexp // \A(?s:.)(?s:.){0,span}(?:R): starts from the second byte of the text given
	d0   *dfa.DFA       // at0's DFA, or nil (dfa.go)
	d1   *dfa.DFA       // at1's
}

// newLead returns the lead of pattern (the RE2 regex a rule runs, or its
// superset) with the keys its head gives, or nil.
func newLead(pattern string) (*lead, []string) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, nil
	}
	keys, span, ok := leadKeys(re.Simplify())
	if !ok || span <= 0 || span > maxLeadSpan {
		return nil, nil
	}
	n := strconv.Itoa(span)
	at0, err0 := regexp.Compile(`\A(?s:.){0,` + n + `}(?:` + pattern + `)`)
	at1, err1 := regexp.Compile(`\A(?s:.)(?s:.){0,` + n + `}(?:` + pattern + `)`)
	if err0 != nil || err1 != nil {
		return nil, nil
	}
	return &lead{span: span, at0: at0, at1: at1}, keys
}

// leadKeys returns keys of which every match of re holds an occurrence
// ending at most span bytes after the match's start.
func leadKeys(re *syntax.Regexp) (keys []string, span int, ok bool) {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op == syntax.OpAlternate {
		for _, sub := range re.Sub {
			k, n, ok := leadKeys(sub)
			if !ok {
				return nil, 0, false
			}
			keys, span = append(keys, k...), max(span, n)
		}
		return keys, span, len(keys) <= 128
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	best := 0
	for j := 1; j <= len(subs); j++ {
		head := &syntax.Regexp{Op: syntax.OpConcat, Sub: subs[:j], Flags: re.Flags}
		n, bounded := maxLen(head)
		if !bounded || n > maxLeadSpan {
			break
		}
		if k := literal.Required(head); k != nil && literal.Rarity(k) > best {
			keys, span, best = k, n, literal.Rarity(k)
		}
	}
	return keys, span, keys != nil
}

// isRuneStart reports whether Go's regexp, reading text[lo:] rune by rune,
// reads a rune starting at p (lo <= p). It reads no byte before lo: the
// regexp starts its first rune at lo whatever precedes it.
func isRuneStart(text string, lo, p int) bool {
	if p <= lo || p >= len(text) || !isContinuation(text[p]) {
		return true
	}
	j := p - 1
	for j > lo && j > p-utf8.UTFMax && isContinuation(text[j]) {
		j--
	}
	if isContinuation(text[j]) {
		return true // a stray continuation byte: read alone
	}
	r, w := utf8.DecodeRuneInString(text[j:])
	if r == utf8.RuneError && w == 1 {
		return true // the lead byte is invalid, read alone, and so is p
	}
	return j+w <= p
}

// leadMatch reports whether the rule's lead regex matches text[lo:hi] (one
// line) at a start from `from` to at least from+span.
func (c *crule) leadMatch(text string, lo, hi, from int) bool {
	for !c.bytes && from < hi && !isRuneStart(text, lo, from) {
		from++ // a byte rule reads every byte as a rune
	}
	if from == lo {
		return regexMatch(c.lead.d0, c.lead.at0, text[lo:hi], c.bytes)
	}
	return regexMatch(c.lead.d1, c.lead.at1, text[from-1:hi], c.bytes)
}

// leadFor gives a keyed body rule a lead when its head's keys are no
// commoner than keys, and returns the keys the rule is to have.
func (c *crule) leadFor(keys []string) []string {
	var pattern string
	switch {
	case c.plainRegex():
		pattern = c.re.String()
	case c.bt != nil && c.btPre != nil:
		pattern = c.btPre.String()
	default:
		return keys
	}
	l, lk := newLead(pattern)
	if l == nil {
		return keys
	}
	if c.bytes {
		if lk = bytesKeys(lk); lk == nil {
			return keys
		}
	}
	if literal.Rarity(lk) < literal.Rarity(keys) {
		return keys
	}
	c.lead = l
	return lk
}
