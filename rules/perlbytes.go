package rules

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Two kinds of SpamAssassin regex need more than RE2 over UTF-8 text.
//
// Byte escapes (\xe2\x80\x8b, [\x80-\xff]): SpamAssassin matches bytes.
// Such a rule reads both its pattern and the text it tests as Latin-1,
// one rune per byte, so that \xe2 matches the byte 0xE2 of a UTF-8
// sequence; its prefilter keys are turned back into the bytes they stand
// for.
//
// Look-around, back-references and atomic groups: RE2 has none of them.
// Such a rule runs on github.com/dlclark/regexp2, a backtracking engine,
// with a time limit per match (backtrackTimeout; a match that runs out
// counts as no match). It still sits behind the literal prefilter: its
// keys come from the pattern with the look-around removed and each
// back-reference read as "anything", a pattern every match of the
// original also matches.

// backtrackTimeout bounds one regexp2 match.
const backtrackTimeout = 50 * time.Millisecond

// latin1Runes returns s with every byte from 0x80 up as the rune of the
// same value.
func latin1Runes(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 {
			b = append(b, c)
		} else {
			b = utf8.AppendRune(b, rune(c))
		}
	}
	return string(b)
}

// fromLatin1 undoes latin1Runes; ok is false when s holds a rune above
// 0xFF.
func fromLatin1(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			return "", false
		}
		b = append(b, byte(r))
	}
	return string(b), true
}

var (
	posixClass = strings.NewReplacer(
		"[:alpha:]", `a-zA-Z`, "[:digit:]", `0-9`, "[:alnum:]", `a-zA-Z0-9`, "[:upper:]", `A-Z`,
		"[:lower:]", `a-z`, "[:space:]", `\s`, "[:xdigit:]", `0-9A-Fa-f`, "[:punct:]", `!-/:-@\[-`+"`"+`{-~`,
		"[:word:]", `\w`, "[:cntrl:]", `\x00-\x1f\x7f`, "[:print:]", `\x20-\x7e`, "[:blank:]", ` \t`,
	)
	reBraceHex = regexp.MustCompile(`\\x\{([0-9A-Fa-f]{1,4})\}`)
)

// backtrackPattern finishes the translation of a pattern for regexp2
// (.NET syntax): Perl's \h, \R, \x{...} and POSIX classes, which .NET
// lacks, are spelled out.
func backtrackPattern(pr perlRegex, body, prefix string) (perlRegex, error) {
	// .NET has no possessive quantifiers; read them as greedy ones, which
	// differ only in how a failing match backtracks.
	body = rePossessive.ReplaceAllString(body, "$1")
	body = posixClass.Replace(body)
	if strings.Contains(body, "[:") && strings.Contains(body, ":]") {
		return pr, &errSkip{ReasonPerlOnly, "POSIX class in " + body}
	}
	body = reBraceHex.ReplaceAllStringFunc(body, func(m string) string {
		h := reBraceHex.FindStringSubmatch(m)[1]
		return `\u` + strings.Repeat("0", 4-len(h)) + h
	})
	body = strings.NewReplacer(
		`\h`, `[\t \u00a0]`,
		`\H`, `[^\t \u00a0]`,
		`\R`, `(?:\r\n|\n|\r)`,
		`\e`, `\u001b`,
		`\/`, `/`,
	).Replace(body)
	if prefix != "" {
		body = "(?" + prefix + ")" + body
	}
	if _, err := regexp2.Compile(body, backtrackOptions); err != nil {
		return pr, &errSkip{pr.why, "regexp2: " + err.Error()}
	}
	pr.pattern = body
	return pr, nil
}

// backtrackOptions: .NET's defaults. Its \s, \d, \w and \b are Unicode
// classes; asciiClasses spells them out as ASCII ones first. (regexp2's
// RE2 mode has ASCII \s \d \w but keeps \b Unicode and changes $.)
const backtrackOptions = regexp2.None

// Perl matches SpamAssassin's byte strings with ASCII classes: \s, \d,
// \w and \b know nothing above 0x7F (an ï is two bytes, neither a word
// character, so "naïve" has a boundary before its "v"). Go's regexp reads
// them the same way; regexp2, like .NET, reads them as Unicode classes,
// which matched where SpamAssassin does not and where the RE2 superset
// tried first (keysPattern) could not: the superset refused values the
// rule would have matched. asciiClasses rewrites a backtracking pattern so
// regexp2 reads them as Perl does: the escapes outside classes become
// ASCII classes, classes that hold one are rebuilt from the ranges Go's
// parser gives them, and \b and \B become look-around.
const (
	asciiB    = `(?:(?<=[0-9A-Za-z_])(?![0-9A-Za-z_])|(?<![0-9A-Za-z_])(?=[0-9A-Za-z_]))`
	asciiNotB = `(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_]))`
)

var asciiEscapes = map[byte]string{
	's': `[\t\n\f\r ]`, 'S': `[^\t\n\f\r ]`, // Go's \s, without Perl's \v: see asciiSpace
	'd': `[0-9]`, 'D': `[^0-9]`,
	'w': `[0-9A-Za-z_]`, 'W': `[^0-9A-Za-z_]`,
	'b': asciiB, 'B': asciiNotB,
}

// asciiClasses returns p with \s \S \d \D \w \W \b \B
// read as ASCII; see above. A class Go's parser refuses is left as it is.
func asciiClasses(p string) string {
	if !strings.ContainsAny(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			if repl, ok := asciiEscapes[p[i+1]]; ok {
				b.WriteString(repl)
			} else {
				b.WriteString(p[i : i+2])
			}
			i++
		case c == '[':
			j := classEnd(p, i)
			if j < 0 {
				b.WriteString(p[i:])
				return b.String()
			}
			b.WriteString(asciiClass(p[i : j+1]))
			i = j
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// asciiClass rebuilds a class holding \s \d \w or their negations from
// the ranges Go's parser reads in it.
func asciiClass(class string) string {
	if !reClassEscape.MatchString(class) {
		return class
	}
	re, err := syntax.Parse(class, syntax.Perl)
	if err != nil || re.Op != syntax.OpCharClass {
		return class
	}
	var b strings.Builder
	b.WriteByte('[')
	put := func(r rune) {
		if r <= 0xFFFF {
			fmt.Fprintf(&b, `\u%04X`, r)
		} else {
			b.WriteRune(r)
		}
	}
	for k := 0; k+1 < len(re.Rune); k += 2 {
		put(re.Rune[k])
		if re.Rune[k+1] != re.Rune[k] {
			b.WriteByte('-')
			put(re.Rune[k+1])
		}
	}
	b.WriteByte(']')
	return b.String()
}

// reClassEscape finds \s \S \d \D \w \W in a class, not escaped.
var reClassEscape = regexp.MustCompile(`(?:^|[^\\])(?:\\\\)*\\[sSdDwW]`)

// classEnd returns the index of the ']' that closes the class opening at
// p[i], or -1.
func classEnd(p string, i int) int {
	j := i + 1
	if j < len(p) && p[j] == '^' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for j < len(p) && p[j] != ']' {
		if p[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(p) {
		return -1
	}
	return j
}

// compileBacktrack compiles a rule's backtracking pattern with its classes
// read as ASCII (asciiClasses), as the RE2 superset keysPattern derives
// from the same pattern reads them.
func compileBacktrack(pattern string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(asciiClasses(pattern), backtrackOptions)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = backtrackTimeout
	return re, nil
}

// rePossessive finds a possessive quantifier: a quantifier, not escaped,
// followed by "+".
var rePossessive = regexp.MustCompile(`((?:^|[^\\])(?:\\\\)*(?:[*+?]|\{\d+(?:,\d*)?\}))\+`)

var reBackrefAny = regexp.MustCompile(`\\(?:[1-9][0-9]*|k<[^>]*>|k\{[^}]*\}|g\{?-?[0-9]+\}?)`)

// keysPattern turns a backtracking pattern into an RE2 pattern that every
// match of it also matches, or "" when that is not possible: look-around
// removed, back-references as (?s:.*), atomic groups and possessive
// quantifiers as ordinary ones.
func keysPattern(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+1 < len(p) {
			b.WriteByte(c)
			b.WriteByte(p[i+1])
			i++
			continue
		}
		if c == '[' {
			// Copy the class whole: "(?=" inside it is literal.
			j := classEnd(p, i)
			if j < 0 {
				return ""
			}
			b.WriteString(p[i : j+1])
			i = j
			continue
		}
		if strings.HasPrefix(p[i:], "(?=") || strings.HasPrefix(p[i:], "(?!") ||
			strings.HasPrefix(p[i:], "(?<=") || strings.HasPrefix(p[i:], "(?<!") {
			end := groupEnd(p, i)
			if end < 0 {
				return ""
			}
			i = end
			continue
		}
		if strings.HasPrefix(p[i:], "(?>") {
			b.WriteString("(?:")
			i += 2
			continue
		}
		if (c == '+') && i > 0 && strings.ContainsRune("*+?}", rune(p[i-1])) && (i < 2 || p[i-2] != '\\') {
			continue // possessive: drop the +
		}
		b.WriteByte(c)
	}
	out := reBackrefAny.ReplaceAllString(b.String(), `(?s:.*)`)
	out = strings.NewReplacer(`\h`, `[\t \x{a0}]`, `\H`, `[^\t \x{a0}]`, `\R`, `(?:\r\n|\n|\r)`).Replace(out)
	out = regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`).ReplaceAllString(out, `\x{$1}`)
	out = perlDollar(out, strings.Contains(reFlagPrefix.FindString(out), "m"))
	if _, err := regexp.Compile(out); err != nil {
		if !strings.Contains(err.Error(), "invalid repeat count") {
			return ""
		}
		// Nested counted repeats RE2 will not expand: "+" and "*"
		// match whatever the counts match, and more.
		out = saLoosenCounts(out)
		if _, err := regexp.Compile(out); err != nil {
			return ""
		}
	}
	return out
}

// groupEnd returns the index of the parenthesis closing the group that
// opens at p[i], or -1.
func groupEnd(p string, i int) int {
	depth := 0
	inClass := false
	for j := i; j < len(p); j++ {
		switch c := p[j]; {
		case c == '\\':
			j++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}
