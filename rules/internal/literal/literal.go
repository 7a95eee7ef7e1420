// Package literal finds, for a regular expression, a set of strings of
// which every match must contain at least one: the keys of a literal
// prefilter. The strings are ASCII lower-cased, for a matcher that folds
// ASCII case (package ac); that only widens the set of texts that pass the
// prefilter, never narrows it.
//
// The analysis is conservative: where it is not sure, it returns nil and
// the caller runs the regular expression on every text. U+FFFD is never
// part of a key: Go's regexp reads each invalid byte of the text as
// U+FFFD, so a pattern holding it matches bytes its UTF-8 form is not.
package literal

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinLen is the shortest useful key made of letters and digits only: a
// shorter one occurs in almost every text and filters nothing.
const MinLen = 3

const (
	maxExact = 64  // strings in an exact set
	maxAlt   = 128 // strings in a required set built from an alternation
	maxClass = 10  // runes in a character class taken as an exact set
	maxBytes = 256 // bytes in one exact string
)

type info struct {
	exact   []string // every string the node can match, when exactOK
	exactOK bool
	req     []string // a match contains one of these; nil when unknown
}

// Required returns the keys for re (parsed with syntax.Perl flags), or nil
// when there is no useful set. Among the sets the regex offers it prefers
// the one ordinary text holds least often (see rarity); when that one is
// not usable, the longest is taken, as RequiredLongest does.
func Required(re *syntax.Regexp) []string {
	if keys := (ranker{rarity}).required(re); usable(keys) {
		return keys
	}
	return RequiredLongest(re)
}

// RequiredLongest returns the keys for re ranked by length alone (see
// keyScore), or nil when there is no useful set.
func RequiredLongest(re *syntax.Regexp) []string {
	if keys := (ranker{keyScore}).required(re); usable(keys) {
		return keys
	}
	return nil
}

// ranker ranks the candidate key sets of the analysis by a score of their
// weakest key.
type ranker struct{ key func(string) int }

func (rk ranker) required(re *syntax.Regexp) []string {
	return rk.best(rk.analyse(re))
}

// usable reports whether a key set filters anything (see keyScore).
func usable(keys []string) bool { return score(keys) >= MinLen }

// keyScore rates a key: its length, plus 2 when it holds a byte other than
// a letter, digit or space ("$", "@", "&#"), which ordinary text has on few
// lines.
func keyScore(k string) int {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c > ' ' && c < 0x7f && !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') {
			return len(k) + 2
		}
	}
	return len(k)
}

// RequiredString parses and analyses a pattern in Go regexp syntax.
func RequiredString(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	return Required(re.Simplify())
}

func exact(ss ...string) info { return info{exact: ss, exactOK: true} }

func (rk ranker) analyse(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpLiteral:
		ss, ok := literalStrings(re.Rune, re.Flags&syntax.FoldCase != 0)
		if !ok {
			return info{}
		}
		return exact(ss...)
	case syntax.OpCharClass:
		return charClass(re.Rune)
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return exact("")
	case syntax.OpCapture:
		return rk.analyse(re.Sub[0])
	case syntax.OpQuest:
		in := rk.analyse(re.Sub[0])
		if in.exactOK && len(in.exact) < maxExact {
			return exact(dedupe(append(slices.Clone(in.exact), ""))...)
		}
		return info{}
	case syntax.OpPlus:
		return info{req: rk.best(rk.analyse(re.Sub[0]))}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return info{}
		}
		in := rk.analyse(re.Sub[0])
		if re.Min == 1 && re.Max == 1 {
			return in
		}
		return info{req: rk.best(in)}
	case syntax.OpConcat:
		return rk.concat(re.Sub)
	case syntax.OpAlternate:
		return rk.alternate(re.Sub)
	}
	return info{}
}

// literalStrings returns the strings a literal matches, ASCII lower-cased;
// a non-ASCII rune with case variants (under fold) multiplies them, as
// the ASCII-folding matcher sees each variant as other bytes.
func literalStrings(runes []rune, fold bool) ([]string, bool) {
	out := []string{""}
	for _, r := range runes {
		if r == utf8.RuneError {
			return nil, false // it also matches any invalid byte
		}
		var vs []string
		switch {
		case r < utf8.RuneSelf:
			vs = []string{string(rune(lower(byte(r))))}
		case fold && unicode.SimpleFold(r) != r:
			vs = []string{string(r)}
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f < utf8.RuneSelf {
					vs = append(vs, string(rune(lower(byte(f)))))
				} else {
					vs = append(vs, string(f))
				}
			}
		default:
			vs = []string{string(r)}
		}
		next, ok := cross(out, vs)
		if !ok {
			return nil, false
		}
		out = next
	}
	return out, true
}

// Hazard reports whether text holds one of the two non-ASCII runes that
// Unicode case folding maps onto ASCII letters: the Kelvin sign (K) and the
// long s (ſ). (?i)kiss matches "\u212Aiss", which an ASCII-folding
// prefilter keyed on "kiss" would miss, so a caller must not trust the keys
// for such a text and runs every rule on it instead. Such texts are rare.
func Hazard(text string) bool {
	return strings.Contains(text, "\u212A") || strings.Contains(text, "\u017F")
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

func charClass(ranges []rune) info {
	n := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] <= utf8.RuneError && utf8.RuneError <= ranges[i+1] {
			return info{} // U+FFFD also matches any invalid byte
		}
		n += int(ranges[i+1]-ranges[i]) + 1
		if n > maxClass {
			return info{}
		}
	}
	var out []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			if r < utf8.RuneSelf {
				out = append(out, string(rune(lower(byte(r)))))
			} else {
				out = append(out, string(r))
			}
		}
	}
	return exact(dedupe(out)...)
}

func (rk ranker) concat(subs []*syntax.Regexp) info {
	var cands [][]string
	cur := []string{""}
	broken := false
	for _, sub := range subs {
		if sub.Op == syntax.OpPlus || (sub.Op == syntax.OpRepeat && sub.Min >= 1) {
			// x+ is x followed by more: the run so far extends with x,
			// and a new run starts with the last x.
			if in := rk.analyse(sub.Sub[0]); in.exactOK {
				if next, ok := cross(cur, in.exact); ok {
					cands = append(cands, next)
				}
				cur = in.exact
				broken = true
				continue
			}
		}
		in := rk.analyse(sub)
		if !in.exactOK {
			cands = append(cands, cur, rk.best(in))
			cur = []string{""}
			broken = true
			continue
		}
		next, ok := cross(cur, in.exact)
		if !ok {
			cands = append(cands, cur)
			broken = true
			cur = in.exact
			continue
		}
		cur = next
	}
	cands = append(cands, cur)
	var req []string
	for _, c := range cands {
		if rk.better(c, req) {
			req = c
		}
	}
	if !broken {
		return info{exact: cur, exactOK: true, req: req}
	}
	return info{req: req}
}

func cross(a, b []string) ([]string, bool) {
	if len(a)*len(b) > maxExact {
		return nil, false
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			if len(x)+len(y) > maxBytes {
				return nil, false
			}
			out = append(out, x+y)
		}
	}
	return dedupe(out), true
}

func (rk ranker) alternate(subs []*syntax.Regexp) info {
	allExact := true
	var ex, req []string
	reqOK := true
	for _, sub := range subs {
		in := rk.analyse(sub)
		if in.exactOK {
			ex = append(ex, in.exact...)
		} else {
			allExact = false
		}
		b := rk.best(in)
		if rk.score(b) == 0 {
			reqOK = false
		}
		req = append(req, b...)
	}
	out := info{}
	if allExact && len(ex) <= maxExact {
		out.exact, out.exactOK = dedupe(ex), true
	}
	if reqOK && len(req) <= maxAlt {
		out.req = dedupe(req)
	}
	return out
}

// best picks the more selective of a node's exact set and its required set.
func (rk ranker) best(in info) []string {
	var b []string
	if in.exactOK {
		b = in.exact
	}
	if rk.better(in.req, b) {
		b = in.req
	}
	return b
}

// score is the ranker's score of the weakest string in the set (0 for none).
func (rk ranker) score(set []string) int {
	if len(set) == 0 {
		return 0
	}
	m := rk.key(set[0])
	for _, s := range set[1:] {
		m = min(m, rk.key(s))
	}
	return m
}

// score is the keyScore of the weakest string in the set.
func score(set []string) int { return ranker{keyScore}.score(set) }

func (rk ranker) better(a, b []string) bool {
	sa, sb := rk.score(a), rk.score(b)
	if sa != sb {
		return sa > sb
	}
	return sa > 0 && len(a) < len(b)
}

func dedupe(ss []string) []string {
	slices.Sort(ss)
	return slices.Compact(ss)
}
