package ac

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// naive is the reference: which patterns occur in text, ASCII case folded.
func naive(patterns []string, text string) []int {
	lt := asciiLower(text)
	var out []int
	for i, p := range patterns {
		if p != "" && strings.Contains(lt, asciiLower(p)) {
			out = append(out, i)
		}
	}
	return out
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}

func found(m *Matcher, text string) []int {
	var out []int
	m.MatchString(text, func(id int) { out = append(out, id) })
	slices.Sort(out)
	return out
}

func TestMatchTable(t *testing.T) {
	pats := []string{"he", "she", "his", "hers", "viagra", "ViAgRa", "x", "", "é"}
	m, err := New(pats)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want []int
	}{
		{"ushers", []int{0, 1, 3}},
		{"BUY VIAGRA NOW", []int{4, 5}},
		{"nothing", nil},
		{"", nil},
		{"café", []int{8}},
		{"CAFÉ", nil}, // non-ASCII bytes match exactly
		{"xxxx", []int{6}},
	} {
		if got := found(m, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.text, got, tc.want)
		}
	}
	// Match over bytes agrees with MatchString.
	var got []int
	m.Match([]byte("ushers"), func(id int) { got = append(got, id) })
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 3}) {
		t.Errorf("Match: %v", got)
	}
}

// words returns a maker of random words of n bytes of alpha.
func words(r *rand.Rand, alpha string) func(n int) string {
	return func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(alpha[r.IntN(len(alpha))])
		}
		return b.String()
	}
}

func TestMatchRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := words(r, "abcAB \xc3\xa9")
	for round := range 300 {
		pats := make([]string, 1+r.IntN(30))
		for i := range pats {
			pats[i] = word(1 + r.IntN(5))
		}
		m, err := New(pats)
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			text := word(r.IntN(200))
			if got, want := found(m, text), naive(pats, text); !slices.Equal(got, want) {
				t.Fatalf("round %d: patterns %q text %q: got %v, want %v", round, pats, text, got, want)
			}
		}
	}
}

func TestEmpty(t *testing.T) {
	m, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.MatchString("anything", func(int) { t.Fatal("reported a pattern from an empty set") })
}

func TestTooLarge(t *testing.T) {
	big := strings.Repeat("a", MaxStates+1)
	if _, err := New([]string{big}); err == nil {
		t.Fatal("a pattern set over MaxStates was accepted")
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("he\x00she\x00hers", "ushers")
	f.Add("ViAgRa\x00x", "buy VIAGRA")
	f.Add("\xc3\xa9", "caf\xc3\xa9")
	f.Fuzz(func(t *testing.T, patterns, text string) {
		if len(patterns) > 4096 {
			return
		}
		pats := strings.Split(patterns, "\x00")
		m, err := New(pats)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := found(m, text), naive(pats, text); !slices.Equal(got, want) {
			t.Fatalf("patterns %q text %q: got %v, want %v", pats, text, got, want)
		}
		// Each reports every occurrence at its end offset.
		for id, p := range pats {
			want := 0
			if p != "" {
				lt, lp := asciiLower(text), asciiLower(p)
				for i := 0; i+len(lp) <= len(lt); i++ {
					if lt[i:i+len(lp)] == lp {
						want++
					}
				}
			}
			got := 0
			m.Each(text, func(i, end int) {
				if i == id {
					got++
					if asciiLower(text[end-len(p):end]) != asciiLower(p) {
						t.Fatalf("pattern %q reported at %d", p, end)
					}
				}
			})
			if got != want {
				t.Fatalf("pattern %q: Each reported %d occurrences, want %d", p, got, want)
			}
		}
		if got, want := each(m, text), eachRef(m, text); !slices.Equal(got, want) {
			t.Fatalf("Each %v, the plain loop %v", got, want)
		}
		var viaBytes []int
		m.Match([]byte(text), func(id int) { viaBytes = append(viaBytes, id) })
		slices.Sort(viaBytes)
		if !slices.Equal(viaBytes, found(m, text)) {
			t.Fatal("Match and MatchString disagree")
		}
	})
}

// eachRef is Each as a plain loop over the table, one byte at a time and
// with every index checked: the reference for walk's unrolled, unchecked
// loop.
func eachRef(m *Matcher, text string) [][2]int {
	var out [][2]int
	if len(m.own) <= 1 {
		return nil
	}
	nc := int32(m.nclass)
	s := int32(0)
	for i := 0; i < len(text); i++ {
		s = m.delta[int(s)+int(m.classes[text[i]])]
		if s < 0 {
			s &= stateMask
			for t := s / nc; t >= 0; t = m.dictLink[t] {
				for _, id := range m.own[t] {
					out = append(out, [2]int{int(id), i + 1})
				}
			}
		}
	}
	return out
}

func each(m *Matcher, text string) [][2]int {
	var out [][2]int
	m.Each(text, func(id, end int) { out = append(out, [2]int{id, end}) })
	return out
}

// TestEachAgrees: Each reports what the plain loop does, in the same
// order, for occurrences ending at every offset of the unrolled rounds,
// on small sets and on one of thousands of patterns.
func TestEachAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	word := words(r, "abcAB \xc3\xa9")
	for round := range 300 {
		pats := make([]string, 1+r.IntN(20))
		for i := range pats {
			pats[i] = word(1 + r.IntN(4))
		}
		m, err := New(pats)
		if err != nil {
			t.Fatal(err)
		}
		for n := range 40 {
			text := word(n)
			if got, want := each(m, text), eachRef(m, text); !slices.Equal(got, want) {
				t.Fatalf("round %d: patterns %q text %q: got %v, want %v", round, pats, text, got, want)
			}
		}
	}
	pats := make([]string, 5000)
	for i := range pats {
		pats[i] = randWord(r, 2+r.IntN(6))
	}
	m, err := New(pats)
	if err != nil {
		t.Fatal(err)
	}
	word = words(r, "abcdefghijklmnopqrstuvwxyz ABC")
	for range 50 {
		text := word(r.IntN(2000))
		got, want := each(m, text), eachRef(m, text)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("5000 patterns, text %q: got %d reports, want %d (and some)", text, len(got), len(want))
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	pats := make([]string, 10000)
	for i := range pats {
		pats[i] = randWord(r, 6+r.IntN(8))
	}
	m, err := New(pats)
	if err != nil {
		b.Fatal(err)
	}
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), 100<<10/45)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		m.Match(text, func(int) {})
	}
}

func randWord(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// SpamAssassin's "full" rules' keys: a set small enough to be searched by
// anchor bytes.
var fullKeys = []string{"content-x-", "content-y-", "content-z-", "from:\t", "from:\n", "from:\f", "from:\r", "from: "}

func TestAnchors(t *testing.T) {
	m, err := New(fullKeys)
	if err != nil {
		t.Fatal(err)
	}
	if m.anchors == nil {
		t.Fatal("the full rules' keys are not searched by anchor")
	}
	var search []byte
	for _, g := range m.anchors {
		search = append(search, g.search...)
	}
	if string(search) != ":-" {
		t.Errorf("anchor bytes %q, want \":-\"", search)
	}
	for _, tc := range []struct {
		text string
		want []int
	}{
		{"From: a\r\nContent-X-Foo: bar\r\n", []int{0, 7}},
		{"FROM:\r\n", []int{6}},
		{"from:", nil},       // the anchor at the text's end
		{":-content-z", nil}, // anchors before a pattern's start
		{"xcontent-Z-", []int{2}},
	} {
		if got := found(m, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.text, got, tc.want)
		}
	}
	big := make([]string, maxAnchorPatterns+1)
	for i := range big {
		big[i] = "::" + strings.Repeat("a", i+1)
	}
	if m, _ := New(big); m.anchors != nil {
		t.Errorf("%d patterns searched by anchor, above maxAnchorPatterns", len(big))
	}
	if m, _ := New([]string{"the", "and", "ion"}); m.anchors != nil {
		t.Errorf("common letters searched by anchor: %v", m.anchors)
	}
}

// TestAnchorsAgree: anchor search and the automaton find the same
// patterns, on sets of rare and common bytes.
func TestAnchorsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	word := words(r, "xX:-zZ e\xc3\xa9*")
	anchoredRounds := 0
	for round := range 500 {
		pats := make([]string, 1+r.IntN(8))
		for i := range pats {
			pats[i] = word(r.IntN(6))
		}
		m, err := New(pats)
		if err != nil {
			t.Fatal(err)
		}
		if m.anchors != nil {
			anchoredRounds++
		}
		for range 10 {
			text := word(r.IntN(300))
			var auto []int
			m.Match([]byte(text), func(id int) { auto = append(auto, id) })
			slices.Sort(auto)
			want := naive(pats, text)
			if got := found(m, text); !slices.Equal(got, want) || !slices.Equal(auto, want) {
				t.Fatalf("round %d: patterns %q text %q: MatchString %v, Match %v, want %v", round, pats, text, got, auto, want)
			}
		}
	}
	if anchoredRounds < 100 {
		t.Fatalf("only %d of 500 sets searched by anchor", anchoredRounds)
	}
}

func BenchmarkFullKeys(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for sb.Len() < 160<<10 {
		for range 76 {
			sb.WriteByte(b64[r.IntN(64)])
		}
		sb.WriteString("\r\n")
	}
	text := "From: someone <a@example.com>\r\nSubject: hi\r\n\r\n" + sb.String()
	m, err := New(fullKeys)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for _, mode := range []string{"anchors", "automaton"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "automaton" {
				defer func(a []anchorGroup) { m.anchors = a }(m.anchors)
				m.anchors = nil
			}
			for b.Loop() {
				m.MatchString(text, func(int) {})
			}
		})
	}
}
