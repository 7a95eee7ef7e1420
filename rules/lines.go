package rules

import "strings"

// Body and raw-body rules match within one line of their text, as
// SpamAssassin matches them paragraph by paragraph (the body text holds one
// paragraph per line): every body regex runs on single lines, never on the
// whole text, so ^ and $ anchor at line ends and nothing matches across a
// line break. A rule whose literals occur runs only on the lines where they
// occur (or, when its matches are short, on a window around each
// occurrence: window.go), the others on every line unless a run check
// rules the line out (runcheck.go); all give the same answer, and Go's
// regexp runs much faster on short lines (it can backtrack instead of
// simulating the NFA).

// appendLineStarts appends the offset of each line of text to starts.
func appendLineStarts(starts []int, text string) []int {
	starts = append(starts, 0)
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
