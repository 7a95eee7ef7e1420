package rules

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// checkWordTables holds wordTable to the map[string]int maDiff counted
// with before: the same counts, the same words, and wordsLeft the number
// of HTML words left after deleting those the text has as often.
func checkWordTables(t *testing.T, htmlWords, textWords []string) {
	t.Helper()
	html, text := new(wordTable), new(wordTable)
	hm, tm := map[string]int{}, map[string]int{}
	for _, w := range htmlWords {
		html.add(w)
		hm[w]++
	}
	for _, w := range textWords {
		text.add(w)
		tm[w]++
	}
	for _, c := range []struct {
		tab *wordTable
		m   map[string]int
	}{{html, hm}, {text, tm}} {
		if c.tab.n != len(c.m) {
			t.Fatalf("table holds %d words, the map %d", c.tab.n, len(c.m))
		}
		for w, n := range c.m {
			if got, ok := c.tab.get(w); !ok || got != n {
				t.Fatalf("%q: table %d %v, map %d", w, got, ok, n)
			}
		}
		for _, w := range append(htmlWords, textWords...) {
			if _, ok := c.m[w]; !ok {
				if _, in := c.tab.get(w); in {
					t.Fatalf("%q held by the table, not by the map", w)
				}
			}
		}
	}
	for k, n := range tm {
		if h, ok := hm[k]; ok && h-n < 1 {
			delete(hm, k)
		}
	}
	if got := wordsLeft(html, text); got != len(hm) {
		t.Fatalf("wordsLeft %d, the map's deletions leave %d", got, len(hm))
	}
}

func TestWordTableIsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	word := func(alpha string) string {
		b := make([]byte, 1+rng.IntN(4))
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(b)
	}
	for round := range 300 {
		alpha := "abc"
		if round%2 == 1 {
			alpha = "abcdefghijklmnopqrstuvwxyz"
		}
		var hw, tw []string
		for range rng.IntN(2000) {
			hw = append(hw, word(alpha))
		}
		for range rng.IntN(200) {
			tw = append(tw, word(alpha))
		}
		checkWordTables(t, hw, tw)
	}
	checkWordTables(t, nil, nil)
	checkWordTables(t, nil, []string{"a"})
	checkWordTables(t, []string{"\n"}, []string{"a"})
}

func FuzzWordTable(f *testing.F) {
	f.Add("alpha gamma gamma", "alpha beta gamma")
	f.Add("one two three", "one two three three")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, html, text string) {
		checkWordTables(t, strings.Fields(html), strings.Fields(text))
	})
}
