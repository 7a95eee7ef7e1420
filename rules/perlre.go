package rules

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Skip reasons for SpamAssassin rules that cannot run here.
const (
	ReasonEval        = "eval"             // eval: rules call Perl code
	ReasonLookaround  = "look-around"      // (?=, (?!, (?<=, (?<!
	ReasonBackref     = "backreference"    // \1, \k<name>, \g{1}
	ReasonAtomic      = "atomic group"     // (?>...) and possessive quantifiers
	ReasonPerlOnly    = "perl-only syntax" // \G, recursion, (?|, code blocks, \c
	ReasonHighBytes   = "byte escapes"     // \x80-\xff: SpamAssassin matches bytes, Portcullis UTF-8 text
	ReasonRE2         = "rejected by RE2"  // anything else regexp.Compile refuses
	ReasonMetaDep     = "meta uses a skipped or undefined rule"
	ReasonPseudo      = "pseudo-header" // X-Spam-Relays-* and the like, computed by SpamAssassin itself
	ReasonUnsupported = "unsupported rule type"
	ReasonSyntax      = "syntax"
	ReasonTooLong     = "regex too long"                         // over Limits.MaxRegexBytes' default
	ReasonUnkeyed     = "slow regex without a prefilter literal" // backtracking or byte regex that would run on every line
)

// errSkip carries the reason a Perl regex cannot become RE2.
type errSkip struct{ reason, detail string }

func (e *errSkip) Error() string { return e.reason + ": " + e.detail }

// parsePerlRegex reads a Perl match operator (/re/flags, m{re}flags,
// m!re!flags ...) at the start of s and returns the RE2 translation and
// what follows it.
func parsePerlRegex(s string) (re, rest string, err error) {
	pr, rest, err := parsePerlRegexAny(s)
	if err != nil {
		return "", "", err
	}
	if pr.backtrack {
		return "", "", &errSkip{pr.why, pr.pattern}
	}
	if pr.bytes {
		return "", "", &errSkip{ReasonHighBytes, pr.pattern}
	}
	return pr.pattern, rest, nil
}

// parsePerlRegexAny is parsePerlRegex for any engine.
func parsePerlRegexAny(s string) (pr perlRegex, rest string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return pr, "", &errSkip{ReasonSyntax, "empty regex"}
	}
	open := s[0]
	i := 1
	if open == 'm' && len(s) > 1 {
		open = s[1]
		i = 2
	} else if open != '/' {
		return pr, "", &errSkip{ReasonSyntax, "regex must start with / or m"}
	}
	closer := open
	switch open {
	case '{':
		closer = '}'
	case '(':
		closer = ')'
	case '[':
		closer = ']'
	case '<':
		closer = '>'
	}
	depth := 0
	j := i
	for ; j < len(s); j++ {
		c := s[j]
		if c == '\\' {
			j++
			continue
		}
		if closer != open && c == open {
			depth++
			continue
		}
		if c == closer {
			if depth == 0 {
				break
			}
			depth--
		}
	}
	if j >= len(s) {
		return pr, "", &errSkip{ReasonSyntax, "unterminated regex"}
	}
	body := s[i:j]
	k := j + 1
	for k < len(s) && isIdentStart(s[k]) {
		k++
	}
	flags := s[j+1 : k]
	rest = s[k:]
	pr, err = perlTranslate(body, flags, open)
	return pr, rest, err
}

// perlSyntax is what the translation must know of a pattern's syntax.
// scanPerlSyntax finds it in one pass: five regexes over each pattern
// (perlsyntax_test.go keeps them as the specification: TestPerlSyntaxAgainstRegexps,
// FuzzPerlSyntax) took a sixth of the time SpamAssassin's set took to load.
type perlSyntax struct {
	perlOnly   bool // \G \c \X \K \N \C, (?R (?1 (?| (?{ (??{ (?& (?P> (?P=, (*
	lookaround bool // (?= (?! (?<= (?<! outside escapes
	atomic     bool // (?> or a possessive *+ ++ ?+ }+ outside escapes
	backref    bool // \1-\9, \k< \k{, \g1 \g-1 \g{1 \g{-1
	highByte   bool // \x80-\xff, \x{80}-\x{ff}, a character U+0080-U+00FF, or invalid UTF-8
}

// scanPerlSyntax reads scan, a pattern with its escaped backslashes
// removed (stripEscapedBackslashes). Each feature is a short sequence
// that may start at any position, escaped or not, except lookaround and
// atomic groups, which an escape before their first character cancels.
func scanPerlSyntax(scan string) perlSyntax {
	s := perlSyntax{highByte: !utf8.ValidString(scan)}
	escaped := false // scan[i] is the character after a backslash
	prev := byte(0)  // the character before scan[i], an escaped one read as '_'
	for i := 0; i < len(scan); i++ {
		c, rest := scan[i], scan[i+1:]
		switch {
		case c == '\\' && rest != "":
			switch n := rest[0]; {
			case strings.IndexByte("GcXKNC", n) >= 0:
				s.perlOnly = true
			case n >= '1' && n <= '9', strings.HasPrefix(rest, "k<"), strings.HasPrefix(rest, "k{"), n == 'g' && groupNumber(rest[1:]):
				s.backref = true
			case n == 'x' && highHex(rest[1:]):
				s.highByte = true
			}
		case c == '(' && rest != "" && rest[0] == '*':
			s.perlOnly = true
		case c == '(' && len(rest) > 1 && rest[0] == '?':
			r := rest[1:]
			if strings.IndexByte("R0123456789|{&", r[0]) >= 0 || strings.HasPrefix(r, "?{") || strings.HasPrefix(r, "P>") || strings.HasPrefix(r, "P=") {
				s.perlOnly = true
			}
			switch {
			case escaped:
			case r[0] == '=', r[0] == '!', strings.HasPrefix(r, "<="), strings.HasPrefix(r, "<!"):
				s.lookaround = true
			case r[0] == '>':
				s.atomic = true
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(scan[i:])
			if r >= 0x80 && r <= 0xff {
				s.highByte = true
			}
			i += size - 1 // no feature starts inside a character
		}
		if c == '+' && !escaped && strings.IndexByte("*+?}", prev) >= 0 {
			s.atomic = true
		}
		switch {
		case escaped:
			prev, escaped = '_', false
		case c == '\\' && rest != "" && rest[0] != '\n':
			escaped = true
		default:
			prev = c
		}
	}
	return s
}

// groupNumber reports whether s starts as a \g back-reference's number:
// an optional "{", an optional "-", a digit.
func groupNumber(s string) bool {
	s = strings.TrimPrefix(s, "{")
	s = strings.TrimPrefix(s, "-")
	return s != "" && isDigit(s[0])
}

// highHex reports whether s (what follows \x) is a byte 0x80-0xff: two
// hex digits, or two in braces.
func highHex(s string) bool {
	high := func(c byte) bool { return c >= '8' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	hex := func(c byte) bool { return isDigit(c) || high(c) }
	return len(s) >= 2 && high(s[0]) && hex(s[1]) || len(s) >= 4 && s[0] == '{' && high(s[1]) && hex(s[2]) && s[3] == '}'
}

// perlRegex is a Perl regex translated for the engine it needs.
type perlRegex struct {
	pattern   string
	backtrack bool           // needs a backtracking engine (regexp2): look-around, back-references, atomic groups
	why       string         // for backtrack: which of those (a Reason)
	bytes     bool           // matches bytes: pattern and text are read as Latin-1 runes (perlbytes.go)
	re        *regexp.Regexp // for an RE2 pattern: pattern compiled (the check that it compiles), for the rule to reuse
}

// perlTranslate translates a Perl regex body with its flags. Escapes are
// examined outside and inside character classes alike, so a backslash
// escape inside [...] is never mistaken for its syntax outside.
func perlTranslate(body, flags string, delim byte) (perlRegex, error) {
	var pr perlRegex
	// An escaped delimiter is the delimiter itself.
	if delim != '\\' {
		body = strings.ReplaceAll(body, `\`+string(delim), regexp.QuoteMeta(string(delim)))
	}
	var prefix string
	for _, f := range flags {
		switch f {
		case 'i', 's', 'm':
			prefix += string(f)
		case 'x':
			body = stripExtended(body)
		case 'g', 'o':
			// global and compile-once mean nothing for a yes/no match
		default:
			return pr, &errSkip{ReasonPerlOnly, "flag " + string(f)}
		}
	}
	if stripComments(body) == "" {
		// Perl's empty pattern repeats the last successful match.
		return pr, &errSkip{ReasonSyntax, "empty pattern"}
	}
	syn := scanPerlSyntax(stripEscapedBackslashes(body))
	switch {
	case syn.perlOnly:
		return pr, &errSkip{ReasonPerlOnly, body}
	case syn.lookaround:
		pr.backtrack, pr.why = true, ReasonLookaround
	case syn.atomic:
		pr.backtrack, pr.why = true, ReasonAtomic
	case syn.backref:
		pr.backtrack, pr.why = true, ReasonBackref
	}
	if syn.highByte {
		// Raw bytes in a Latin-1 rule file are bytes too.
		pr.bytes = true
		body = latin1Runes(body)
	}
	body = stripComments(body)
	if pr.backtrack {
		return backtrackPattern(pr, body, prefix)
	}
	unreplaced := body
	body = strings.NewReplacer(
		`\Z`, `(?:\n?\z)`,
		`\h`, `[\t \x{a0}]`,
		`\H`, `[^\t \x{a0}]`,
		`\R`, `(?:\r\n|\n|\r)`,
		`\e`, `\x1b`,
		`\/`, `/`,
	).Replace(body)
	body = perlDollar(body, strings.Contains(prefix, "m"))
	if prefix != "" {
		body = "(?" + prefix + ")" + body
	}
	re, err := regexp.Compile(body)
	if err != nil {
		if strings.Contains(err.Error(), "invalid repeat count") {
			// Nested counted repeats RE2 will not expand: the
			// backtracking engine has no such limit.
			pr.backtrack, pr.why = true, ReasonRE2
			return backtrackPattern(pr, unreplaced, prefix)
		}
		return pr, &errSkip{ReasonRE2, err.Error()}
	}
	pr.pattern, pr.re = body, re
	return pr, nil
}

// stripEscapedBackslashes removes \\ pairs so that the pattern checks above
// do not see "\\1" (a backslash then 1) as a back-reference.
func stripEscapedBackslashes(s string) string { return strings.ReplaceAll(s, `\\`, "") }

// stripComments removes (?#...) comments, which RE2 does not know.
func stripComments(s string) string {
	for {
		i := strings.Index(s, "(?#")
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			return s[:i]
		}
		s = s[:i] + s[i+j+1:]
	}
}

// stripExtended applies Perl's /x: whitespace and #-comments outside
// character classes are not part of the pattern.
func stripExtended(s string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
