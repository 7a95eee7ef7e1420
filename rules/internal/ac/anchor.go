package ac

import "strings"

// A small pattern set (the four "full" rules of SpamAssassin's set have
// eight keys between them) is found faster by searching for one rare byte
// of each pattern than by walking the automaton: strings.IndexByte skips
// the text many bytes at a time, where the automaton's walk is a chain of
// dependent table loads, about 2 ns a byte. Each place the byte occurs,
// the patterns anchored on it are compared with the text around it.
// Every occurrence of a pattern has its anchor byte at the same offset, so
// the search finds what the automaton would.

// maxAnchorPatterns bounds the sets searched by anchor: the seen set is
// one word.
const maxAnchorPatterns = 64

// maxAnchorBytes is the most bytes searched for (a letter is two, its
// upper and lower case): each is one pass over the text.
const maxAnchorBytes = 4

// maxAnchorFreq bounds the summed frequency (per mille of mail text, see
// byteFreq) of the bytes searched for: above it, stopping to compare at
// every occurrence costs more than the automaton.
const maxAnchorFreq = 40

type anchored struct {
	id  int
	off int    // the anchor byte's offset in pat
	pat string // lower-cased
}

type anchorGroup struct {
	search []byte // the byte, or both cases of a letter
	pats   []anchored
}

// planAnchors chooses an anchor byte for each pattern, greedily: the byte
// that covers the most patterns not yet covered for its frequency. It
// returns nil when the set is too large or its bytes too common.
func planAnchors(patterns []string) []anchorGroup {
	if len(patterns) > maxAnchorPatterns {
		return nil
	}
	lowered := make([]string, len(patterns))
	uncovered := 0
	for i, p := range patterns {
		b := []byte(p)
		for j := range b {
			b[j] = lower(b[j])
		}
		lowered[i] = string(b)
		if p != "" {
			uncovered++
		}
	}
	covered := make([]bool, len(patterns))
	var groups []anchorGroup
	searched, freq := 0, 0
	for uncovered > 0 {
		var count [256]int
		for i, p := range lowered {
			if covered[i] || p == "" {
				continue
			}
			var once [256]bool
			for j := 0; j < len(p); j++ {
				if !once[p[j]] {
					once[p[j]] = true
					count[p[j]]++
				}
			}
		}
		best, bestCost := -1, 0.0
		for b := 0; b < 256; b++ {
			if count[b] == 0 {
				continue
			}
			cost := float64(byteFreq(byte(b))+2*passes(byte(b))) / float64(count[b])
			if best < 0 || cost < bestCost {
				best, bestCost = b, cost
			}
		}
		g := anchorGroup{search: []byte{byte(best)}}
		if 'a' <= best && best <= 'z' {
			g.search = append(g.search, byte(best)-'a'+'A')
		}
		for i, p := range lowered {
			if covered[i] || p == "" {
				continue
			}
			if off := strings.IndexByte(p, byte(best)); off >= 0 {
				covered[i] = true
				uncovered--
				g.pats = append(g.pats, anchored{id: i, off: off, pat: p})
			}
		}
		searched += len(g.search)
		freq += byteFreq(byte(best))
		if searched > maxAnchorBytes || freq > maxAnchorFreq {
			return nil
		}
		groups = append(groups, g)
	}
	return groups
}

func passes(b byte) int {
	if 'a' <= b && b <= 'z' {
		return 2
	}
	return 1
}

// byteFreq is a byte's rough frequency in mail (headers, text, HTML and
// base64), per mille, both cases of a letter together. Only the order
// matters much: rare bytes make good anchors.
func byteFreq(b byte) int {
	switch {
	case b == ' ':
		return 150
	case 'a' <= b && b <= 'z':
		return letterFreq[b-'a']
	case '0' <= b && b <= '9':
		return 8
	case b >= 0x80:
		return 2
	case b < ' ' && b != '\t' && b != '\n' && b != '\r':
		return 0
	}
	switch b {
	case '\n':
		return 30
	case '\r':
		return 25
	case '.', ',', '=', '/':
		return 8
	case '-', '"', '<', '>', '\t':
		return 5
	case ':', ';', '\'', '+', '(', ')', '_':
		return 3
	}
	return 1 // the rest of ASCII punctuation
}

// letterFreq is byteFreq's table for 'a' to 'z'.
var letterFreq = [26]int{
	60, 12, 24, 28, 90, 18, 16, 35, 55, 2, 6, 30, 20, // a to m
	55, 58, 17, 1, 48, 50, 65, 22, 8, 15, 2, 15, 1, // n to z
}

// matchAnchors is MatchString for a set with anchors.
func (m *Matcher) matchAnchors(text string, found func(id int)) {
	var seen uint64
	for _, g := range m.anchors {
		left := len(g.pats)
		for _, x := range g.search {
			for i := 0; left > 0; {
				k := strings.IndexByte(text[i:], x)
				if k < 0 {
					break
				}
				at := i + k
				i = at + 1
				for _, a := range g.pats {
					bit := uint64(1) << a.id
					if seen&bit != 0 {
						continue
					}
					start := at - a.off
					if start < 0 || start+len(a.pat) > len(text) || !equalFold(text[start:start+len(a.pat)], a.pat) {
						continue
					}
					seen |= bit
					left--
					found(a.id)
				}
			}
		}
	}
}

// equalFold reports whether s, ASCII case folded, is lowered.
func equalFold(s, lowered string) bool {
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lowered[i] {
			return false
		}
	}
	return true
}
