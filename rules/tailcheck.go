package rules

import (
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// A regex that ends in a literal and an end anchor ("\.$", "foo\z") can
// only match where that literal ends the value, or, with (?m), ends one
// of its lines. Per-line rules with such an ending (__TENWORD_GIBBERISH:
// ten words and a full stop at the line's end) otherwise run their regex
// from the start of every line that holds the key, most of which end
// otherwise. A tailCheck is that necessary condition: a suffix test, and
// with (?m) a search for the literal and "\n".
//
// Only RE2 rules get one: Go's $ without (?m) is \z, and with (?m) the
// end or a "\n" (not "\r"). A literal under (?i) must be ASCII without
// "k" or "s", whose folds include the Kelvin sign and the long s, which
// no ASCII comparison sees; for a byte rule (perlbytes.go) those runes
// cannot occur, and any ASCII literal will do.
type tailCheck struct {
	lit    string // lower case when fold
	litNL  string // lit + "\n", for line
	fold   bool
	line   bool // (?m)$: also before any "\n"
	nlLast bool // \n?\z: also before a final "\n"
}

// newTailCheck returns pattern's tail check, or nil when it has none.
func newTailCheck(pattern string, bytes bool) *tailCheck {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return nil
	}
	subs := re.Sub
	t := &tailCheck{}
	switch last := subs[len(subs)-1]; last.Op {
	case syntax.OpEndLine:
		t.line = true
	case syntax.OpEndText:
	default:
		return nil
	}
	subs = subs[:len(subs)-1]
	if n := len(subs); n >= 2 && !t.line && isOptionalNL(subs[n-1]) {
		t.nlLast = true
		subs = subs[:n-1]
	}
	lit := subs[len(subs)-1]
	for lit.Op == syntax.OpCapture {
		lit = lit.Sub[0]
	}
	if lit.Op != syntax.OpLiteral || len(lit.Rune) == 0 {
		return nil
	}
	t.fold = lit.Flags&syntax.FoldCase != 0
	var b strings.Builder
	for _, r := range lit.Rune {
		if r >= utf8.RuneSelf {
			return nil
		}
		c := byte(r)
		if t.fold {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if !bytes && (c == 'k' || c == 's') {
				return nil
			}
		}
		b.WriteByte(c)
	}
	t.lit = b.String()
	t.litNL = t.lit + "\n"
	return t
}

// isOptionalNL reports whether re is \n? (the importer's Perl $).
func isOptionalNL(re *syntax.Regexp) bool {
	return re.Op == syntax.OpQuest && re.Sub[0].Op == syntax.OpLiteral && len(re.Sub[0].Rune) == 1 && re.Sub[0].Rune[0] == '\n'
}

// possible reports whether a match can end in x as the regex's ending
// requires.
func (t *tailCheck) possible(x string) bool {
	if t.endsWith(x) || t.nlLast && len(x) > 0 && x[len(x)-1] == '\n' && t.endsWith(x[:len(x)-1]) {
		return true
	}
	if !t.line {
		return false
	}
	if !t.fold {
		return strings.Contains(x, t.litNL)
	}
	for i := strings.IndexByte(x, '\n'); i >= 0; {
		if t.endsWith(x[:i]) {
			return true
		}
		j := strings.IndexByte(x[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func (t *tailCheck) endsWith(x string) bool {
	if t.fold {
		return hasSuffixFold(x, t.lit) // saeval_html.go
	}
	return strings.HasSuffix(x, t.lit)
}
