package rules

import (
	"regexp/syntax"
	"strings"
)

// Body and raw-body rules match within one line of their text, as
// SpamAssassin matches them paragraph by paragraph (the body text holds one
// paragraph per line). singleLine rewrites a regex so that it cannot match
// a line break: "." and classes lose "\n", ^ and $ (and \A, \z) anchor at
// line boundaries. A match of the rewritten regex over the whole text is
// then exactly a match within some line, so the engine may run it on the
// whole text or only on the lines where its literals occur, and get the
// same answer. Go's regexp also runs much faster on short lines (it can
// backtrack instead of simulating the NFA).
func singleLine(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpAnyChar:
		re.Op = syntax.OpAnyCharNotNL
	case syntax.OpBeginText:
		re.Op = syntax.OpBeginLine
	case syntax.OpEndText:
		re.Op = syntax.OpEndLine
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r == '\n' {
				return &syntax.Regexp{Op: syntax.OpNoMatch}
			}
		}
	case syntax.OpCharClass:
		var out []rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if lo <= '\n' && '\n' <= hi {
				if lo < '\n' {
					out = append(out, lo, '\n'-1)
				}
				if hi > '\n' {
					out = append(out, '\n'+1, hi)
				}
				continue
			}
			out = append(out, lo, hi)
		}
		if len(out) == 0 {
			return &syntax.Regexp{Op: syntax.OpNoMatch}
		}
		re.Rune = out
	}
	for i, sub := range re.Sub {
		re.Sub[i] = singleLine(sub)
	}
	return re
}

// singleLinePattern returns pattern rewritten by singleLine.
func singleLinePattern(pattern string) (string, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", err
	}
	return singleLine(re).String(), nil
}

// lineStarts returns the offset of each line of text.
func lineStarts(text string) []int {
	starts := make([]int, 1, strings.Count(text, "\n")+1)
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		starts = append(starts, i)
	}
	return starts
}
