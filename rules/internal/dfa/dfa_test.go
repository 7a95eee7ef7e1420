package dfa

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"
)

// patterns exercise every instruction and assertion kind.
var patterns = []string{
	``, `a`, `abc`, `a*`, `a+b`, `(a|b)*abb`, `^abc`, `abc$`, `(?m)^abc$`, `(?m)^$`, `^$`,
	`\bfoo\b`, `\Bfoo`, `foo\B`, `\b`, `\B`, `(?i)straße`, `(?i)k`, `(?i)ſ`, `(?i)\x{212A}elvin`,
	`[^a]`, `.`, `(?s).`, `a.c`, `(?s)a.c`, `\A(?s:.){0,5}(?:xyz)`, `\A(?s:.)(?s:.){0,3}(?:\bab)`,
	`\x{FFFD}`, `[\x{FFFD}]`, `[^\x00-\x7f]`, `[\p{Cyrillic}]+`, `\p{L}\p{N}`, `[а-я]{3}`,
	`(?i)viagra|cialis`, `\$\d+(?:,\d{3})*`, `(?:\s+\w+){3}`, `\w{20}`, `\d{3}-\d{4}$`,
	`(?i)\b(?:our company|we)\s+(?:are|is)\b`, `x*$`, `(?m)x$`, `(?m)^\s*$`, `\z`, `(?U)a+?`,
	`[[:^alpha:]]`, `\x{10FFFF}`, `[\x{10000}-\x{10FFFF}]`, `é`, `(?i)É`, `\xff`, `[\x80-\xff]+`,
	`(a|b)*a(a|b){5}`, `a{2,}b{0,3}`, `привет`, `€uro|x`, `é+t`, `\xe9t`, `(?:^|\n)From:`, `\n\n`, `[^\n]+\n`, `\s$`,
}

// inputs gives texts around s: every substring is tried by the callers.
var inputs = []string{
	"", "a", "abc", "xabcx", "abb", "aababb", "foo", " foo ", "afoo", "foob", "\n", "\n\n", "abc\n",
	"\nabc\n", "STRASSE", "strasse", "Straße", "kelvin", "\u212Aelvin", "ſ", "S", "xyz", "  xyz",
	"012345xyz", " ab", "\xff", "\xe2\x82", "\xe2\x82\xac", "€", "a\xffb", "привет мир", "Привет",
	"x1", "é", "É", "\xc3\xa9", "\xc3", "Viagra!", "$1,000,000", "$12", "a b c d", "abcdefghijklmnopqrstuvwxyz",
	"555-1234", "555-1234\n", "our company is", "we  are here", "xxx", "x\n", "From: me", "hdr\nFrom: x",
	"\x00", "\U0010FFFF", "\xf4\x8f\xbf\xbf", "\xed\xa0\x80", "aaaaaaa", "abababbb", " \t\n",
}

func check(t *testing.T, d *DFA, re *regexp.Regexp, s string) {
	t.Helper()
	if got, want := d.MatchString(s), re.MatchString(s); got != want {
		t.Fatalf("%q on %q: dfa %v, regexp %v", d.String(), s, got, want)
	}
	if got, want := d.MatchLatin1(s), re.MatchString(latin1(s)); got != want {
		t.Fatalf("%q on Latin-1 %q: dfa %v, regexp %v", d.String(), s, got, want)
	}
}

func TestAgainstRegexp(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	accelerated := 0
	defer func() {
		// The scan for bytes that can start a thread is exercised.
		if accelerated < 10 {
			t.Errorf("only %d patterns accelerated", accelerated)
		}
	}()
	alphabet := []string{"a", "b", "c", "x", "y", "z", " ", "\n", "é", "\xff", "\xe2\x82", "€", "K", "k", "\u212A", "ß", "S", "1", "_", "$", ",", "f", "o", "п", "\t"}
	for _, p := range patterns {
		d, err := Compile(p)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		re := regexp.MustCompile(p)
		lazy := New(re)
		for _, in := range inputs {
			check(t, lazy, re, in)
			for i := 0; i <= len(in); i++ {
				check(t, d, re, in[i:])
				check(t, d, re, in[:i])
			}
			for _, x := range inputs {
				check(t, d, re, in+x)
			}
		}
		for range 300 {
			var b strings.Builder
			for range rng.IntN(24) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			check(t, d, re, b.String())
		}
		if d.m.acc[0].on {
			accelerated++
		}
	}
}

// TestClasses: every rune of a class behaves as the class says.
func TestClasses(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range patterns {
		d, _ := Compile(p)
		m := d.machine()
		try := func(r rune) {
			c := m.classOf(r)
			if c != uint32(m.ivClass[m.interval(r)]) {
				t.Fatalf("%q: rune %U: table class %d, interval class %d", p, r, c, m.ivClass[m.interval(r)])
			}
			for pc, in := range m.prog.Inst {
				b := m.bit[pc]
				if b < 0 {
					continue
				}
				got := m.classBits[int(c)*m.stride+int(b/64)]&(1<<(b%64)) != 0
				if want := in.MatchRune(r); got != want {
					t.Fatalf("%q: rune %U inst %d: class says %v, MatchRune %v", p, r, pc, got, want)
				}
			}
		}
		for r := rune(0); r < 0x3000; r++ {
			try(r)
		}
		for range 2000 {
			try(rng.Int32N(utf8.MaxRune + 1))
		}
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile(`a(`)
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Pattern != `a(` {
		t.Fatalf("a(: %v", err)
	}
	var se *syntax.Error
	if !errors.As(err, &se) {
		t.Fatalf("a(: %v is not a *syntax.Error", err)
	}
	big := strings.Repeat(`ab`, maxInsts/2) + `c+`
	if _, err := regexp.Compile(big); err != nil {
		t.Fatalf("regexp refuses the big pattern: %v", err)
	}
	_, err = Compile(big)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("program over %d insts: %v", maxInsts, err)
	}
	// New takes it, and answers with the regexp it was given.
	re := regexp.MustCompile(big)
	d := New(re)
	check(t, d, re, "ababc") // Go's regexp takes seconds on a match of this one
	check(t, d, re, strings.Repeat("ab", maxInsts/2))
	if !d.Full() || d.fallback() != re {
		t.Fatal("New's DFA of a refused pattern does not answer with its regexp")
	}
}

// blowup needs 2^21 states: the DFA must stop growing and still answer.
const blowup = `(a|b)*a(a|b){20}`

func blowText(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = "ab"[rng.IntN(2)]
	}
	return string(b)
}

func TestCellCap(t *testing.T) {
	d, _ := Compile(blowup)
	d.SetMaxCells(4096)
	re := regexp.MustCompile(blowup)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		s := blowText(rng, 200) + "b" + strings.Repeat("b", rng.IntN(30))
		check(t, d, re, s)
	}
	if !d.Full() {
		t.Fatal("the DFA did not reach its cap")
	}
	if c := d.m.cells.Load(); c > 4096 {
		t.Fatalf("%d cells, cap 4096", c)
	}
	for range 50 {
		check(t, d, re, blowText(rng, 100)+strings.Repeat("b", rng.IntN(30)))
	}
}

// TestProcessCap: a DFA stops building states at the process-wide cap,
// answers from its fallback then, and the cells stay under the cap. The
// cleanups of DFAs earlier tests dropped may run meanwhile and lower the
// count (a CI run saw it), so texts are fed until the cap is reached, up
// to far more cells than any earlier test of the package builds.
func TestProcessCap(t *testing.T) {
	before := ProcessCells()
	old := SetProcessCellLimit(before + 5000)
	defer SetProcessCellLimit(old)
	d, _ := Compile(blowup)
	re := regexp.MustCompile(blowup)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 50 || !d.Full() && i < 5000; i++ {
		check(t, d, re, blowText(rng, 300))
	}
	if !d.Full() {
		t.Fatalf("the DFA did not reach the process cap (%d cells, cap %d)", ProcessCells(), before+5000)
	}
	if n := ProcessCells(); n > before+5000 {
		t.Fatalf("%d cells, cap %d", n, before+5000)
	}
	// Under the cap a new DFA still works (from its fallback if need be).
	e, _ := Compile(`abc`)
	check(t, e, regexp.MustCompile(`abc`), "xxabcxx")
}

// TestConcurrent: goroutines that build the same DFA's states at once (a
// pattern of thousands of states, so the table grows and is copied while
// others read it) all get regexp's answers.
func TestConcurrent(t *testing.T) {
	concurrent(t, `(?i)\b(?:viagra|cialis|lev[i1]tra)\b|\$\d{3,}`)
	if n := concurrent(t, `(?:a|b)*a(?:a|b){9}c`); n < 100 {
		t.Errorf("only %d states: the table did not grow much", n)
	}
}

// concurrent runs pattern from 8 goroutines and returns its states.
func concurrent(t *testing.T, pattern string) int {
	d, _ := Compile(pattern)
	d.SetMaxCells(1 << 20)
	re := regexp.MustCompile(d.String())
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			words := []string{"buy", "Viagra", "cialis", "levitra", "lev1tra", "$12", "$1234", " ", "\n", "é", "xviagra", "a", "b", "ab", "c"}
			for range 2000 {
				var b strings.Builder
				for range rng.IntN(40) {
					b.WriteString(words[rng.IntN(len(words))])
				}
				s := b.String()
				if d.MatchString(s) != re.MatchString(s) {
					errs <- s
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("differs on %q", s)
	}
	return len(d.m.tab.Load().states)
}

// TestCellsGivenBack: the cells of a collected DFA leave the process
// count, so that reloading a rule set does not use up the process cap.
func TestCellsGivenBack(t *testing.T) {
	grow := func() *atomic.Int64 {
		d, _ := Compile(blowup)
		rng := rand.New(rand.NewPCG(10, 11))
		for range 20 {
			d.MatchString(blowText(rng, 200))
		}
		return d.m.cells // not the DFA: it must become unreachable
	}
	cells := grow()
	if n := cells.Load(); n < 1000 {
		t.Fatalf("the DFA grew only %d cells", n)
	}
	for range 1000 {
		runtime.GC()
		if cells.Load() == 0 {
			return // released: its count went out of processCells
		}
		runtime.Gosched()
	}
	t.Fatalf("a collected DFA still counts %d cells", cells.Load())
}
