package dfa

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// multiOf returns the Multi of ps and their regexps.
func multiOf(t testing.TB, ps []string) (*Multi, []*regexp.Regexp) {
	t.Helper()
	var ds []*DFA
	var res []*regexp.Regexp
	for _, p := range ps {
		re := regexp.MustCompile(p)
		ds = append(ds, New(re))
		res = append(res, re)
	}
	return NewMulti(ds), res
}

// checkMulti compares g's answers on s, from done, with the regexps'.
func checkMulti(t testing.TB, g *Multi, res []*regexp.Regexp, s string, done uint64) {
	t.Helper()
	for _, latin := range []bool{false, true} {
		got := g.match(s, done, latin)
		x := s
		if latin {
			x = latin1(s)
		}
		for i, re := range res {
			want := done&(1<<i) != 0 || re.MatchString(x)
			if got&(1<<i) != 0 != want {
				t.Fatalf("latin1 %v, done %b: %q on %q: multi %v, regexp %v", latin, done, re, s, !want, want)
			}
		}
		if got&^(1<<len(res)-1) != 0 {
			t.Fatalf("answer %b has bits past %d members", got, len(res))
		}
	}
}

// TestMultiAgainstRegexp: random groups of the test patterns answer as
// their regexps, on the test inputs, their pieces and random strings,
// with and without members already done.
func TestMultiAgainstRegexp(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(21, 22))
	alphabet := []string{"a", "b", "c", "x", "y", "z", " ", "\n", "é", "\xff", "\xe2\x82", "€", "K", "k", "\u212A", "ß", "S", "1", "_", "$", ",", "f", "o", "п", "\t", "abc", "foo"}
	for range 150 {
		var ps []string
		for range 1 + rng.IntN(12) {
			ps = append(ps, patterns[rng.IntN(len(patterns))])
		}
		g, res := multiOf(t, ps)
		done := func() uint64 {
			if rng.IntN(3) == 0 {
				return rng.Uint64()
			}
			return 0
		}
		for _, in := range inputs {
			for i := 0; i <= len(in); i++ {
				checkMulti(t, g, res, in[i:], done())
				checkMulti(t, g, res, in[:i], done())
			}
		}
		for range 200 {
			var b strings.Builder
			for range rng.IntN(30) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			checkMulti(t, g, res, b.String(), done())
		}
		if g.Full() {
			t.Fatalf("%q: full", ps)
		}
	}
}

// TestMultiAccelerated: a group whose patterns all start at rare bytes
// skips the text between them, and still answers right around them.
func TestMultiAccelerated(t *testing.T) {
	ps := []string{`(?i)\bv[_\W]?i[_\W]?a[_\W]?g[_\W]?r[_\W]?a\b`, `\$\d+`, `(?m)^zz$`, `\bqu[i1]ck\b`}
	g, res := multiOf(t, ps)
	m := g.machine()
	if !m.acc[0].on || !m.acc[1].on {
		t.Fatal("the group's start bytes are not scanned for")
	}
	words := []string{"the", " ", "\n", "V i a g r a", "viagra", "$5", "$", "zz", " zz", "quick", "qu1ck", "é", "\xff", "text", "."}
	rng := rand.New(rand.NewPCG(23, 24))
	for range 3000 {
		var b strings.Builder
		for range rng.IntN(20) {
			b.WriteString(words[rng.IntN(len(words))])
		}
		checkMulti(t, g, res, b.String(), 0)
	}
}

// TestMultiFull: a group that passes its cap stops growing, and its
// members answer, rightly, from then on.
func TestMultiFull(t *testing.T) {
	g, res := multiOf(t, []string{blowup, `b{3}a`, `\bab`})
	g.SetMaxCells(4096)
	rng := rand.New(rand.NewPCG(25, 26))
	for range 100 {
		checkMulti(t, g, res, blowText(rng, 200)+strings.Repeat("b", rng.IntN(30)), 0)
	}
	if !g.Full() {
		t.Fatal("the group did not reach its cap")
	}
	if c := g.m.cells.Load(); c > 4096 {
		t.Fatalf("%d cells, cap 4096", c)
	}
	for range 50 {
		checkMulti(t, g, res, blowText(rng, 100)+strings.Repeat("b", rng.IntN(30)), rng.Uint64()&3)
	}
}

// TestMultiRefused: a group with a member that has no DFA answers with
// its members from the start.
func TestMultiRefused(t *testing.T) {
	big := strings.Repeat(`ab`, maxInsts/2) + `c+`
	g, res := multiOf(t, []string{`abc`, big})
	checkMulti(t, g, res, "xxabcxx", 0)
	checkMulti(t, g, res, "ababc", 0)
	if !g.Full() {
		t.Fatal("a group with a refused member built an automaton")
	}
	// Members whose union is too large, each one small enough.
	half := strings.Repeat(`ab`, maxInsts/4+8) + `c+`
	g, res = multiOf(t, []string{half, half + "d", `x`})
	checkMulti(t, g, res, "abx", 0)
	if !g.Full() {
		t.Fatal("a union over maxInsts built an automaton")
	}
}

// TestMultiConcurrent: goroutines building the same group's states at
// once get the regexps' answers.
func TestMultiConcurrent(t *testing.T) {
	g, res := multiOf(t, []string{`(?i)\b(?:viagra|cialis)\b`, `(?:a|b)*a(?:a|b){7}c`, `\$\d{3,}`, `(?m)^b+$`})
	g.SetMaxCells(1 << 20)
	words := []string{"buy", "Viagra", "cialis", "$12", "$1234", " ", "\n", "é", "a", "b", "ab", "c"}
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(k), 27))
			for range 1000 {
				var b strings.Builder
				for range rng.IntN(40) {
					b.WriteString(words[rng.IntN(len(words))])
				}
				checkMulti(t, g, res, b.String(), rng.Uint64()&rng.Uint64()&15)
			}
		}()
	}
	wg.Wait()
}

// TestMultiMax: MaxMulti members, every bit in use.
func TestMultiMax(t *testing.T) {
	var ps []string
	for i := range MaxMulti {
		ps = append(ps, string(rune('A'+i%26))+strings.Repeat("x", i/26))
	}
	g, res := multiOf(t, ps)
	checkMulti(t, g, res, "ABxxCxxZ Y", 0)
	checkMulti(t, g, res, "Lxx M", 1<<63)
	if got := g.Match("", ^uint64(0)); got != ^uint64(0) {
		t.Fatalf("all done: %b", got)
	}
}
