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

var (
	reLookaround = regexp.MustCompile(`\(\?<?[=!]`)
	reAtomic     = regexp.MustCompile(`\(\?>|[*+?}]\+`)
	reBackref    = regexp.MustCompile(`\\(?:[1-9]|k<|k\{|g\{?-?[0-9])`)
	rePerlOnly   = regexp.MustCompile(`\\[GcXKNC]|\(\?(?:R|[0-9]|\||\{|\?\{|&|P>|P=)|\(\*`)
	reEscaped    = regexp.MustCompile(`\\.`)
	reHighByte   = regexp.MustCompile(`\\x[89a-fA-F][0-9a-fA-F]|\\x\{[89a-fA-F][0-9a-fA-F]\}|[\x80-\xff]`)
)

// perlRegex is a Perl regex translated for the engine it needs.
type perlRegex struct {
	pattern   string
	backtrack bool   // needs a backtracking engine (regexp2): look-around, back-references, atomic groups
	why       string // for backtrack: which of those (a Reason)
	bytes     bool   // matches bytes: pattern and text are read as Latin-1 runes (perlbytes.go)
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
	scan := stripEscapedBackslashes(body)
	plain := reEscaped.ReplaceAllString(scan, "_") // escaped characters are literals
	switch {
	case rePerlOnly.MatchString(scan):
		return pr, &errSkip{ReasonPerlOnly, body}
	case reLookaround.MatchString(plain):
		pr.backtrack, pr.why = true, ReasonLookaround
	case reAtomic.MatchString(plain):
		pr.backtrack, pr.why = true, ReasonAtomic
	case reBackref.MatchString(scan):
		pr.backtrack, pr.why = true, ReasonBackref
	}
	if reHighByte.MatchString(scan) || !utf8.ValidString(scan) {
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
	if _, err := regexp.Compile(body); err != nil {
		if strings.Contains(err.Error(), "invalid repeat count") {
			// Nested counted repeats RE2 will not expand: the
			// backtracking engine has no such limit.
			pr.backtrack, pr.why = true, ReasonRE2
			return backtrackPattern(pr, unreplaced, prefix)
		}
		return pr, &errSkip{ReasonRE2, err.Error()}
	}
	pr.pattern = body
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
