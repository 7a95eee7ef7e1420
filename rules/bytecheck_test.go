package rules

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portcullis-mail/portcullis/filter"
)

// byteCheckPatterns are regexes of the shapes SpamAssassin's keyless rules
// have, for the property tests and as the fuzz target's seeds.
var byteCheckPatterns = []string{
	`[A-Za-z][\x{0430}\x{0435}\x{043E}\x{0440}\x{0441}\x{0445}\x{0443}]+[A-Za-z]`,
	`(?i)[а-я]{3}`,
	`\$\d`,
	`(?:\$|€|£)\s?\d`,
	`(?i)k`,                      // folds to U+212A KELVIN SIGN (0xE2 ...)
	`(?i)s{2}`,                   // folds to U+017F LONG S (0xC5 ...)
	`\x{FFFD}`,                   // an invalid byte reads as U+FFFD
	`[^\x00-\x7f]{2}`,            // an invalid byte is outside this class too
	`\x00`,                       // NUL
	`a?\x00|b\x01+`,              // alternation: the union
	`x*`,                         // needs nothing
	`(?:\x{2013}|--)\d`,          // one branch needs 0xE2, the other '-'
	`\b[€]{1,3}\b`,               // a repeat with a minimum
	`(?:\x{200b}){0,2}z\x{200c}`, // a repeat without one
	`.\x{00e9}.`,
	`(?i)\x{00c9}`,
	`[\x{10000}-\x{10ffff}]`,
	`[\x{7f}-\x{80}]`,
	`(?s).\n.`,
	`[1-9][\dOo][,\.][\dOo]{3}`,
	`\xa3\d{3}`,
	`[\xc0-\xff]{3}`,
	`\x{00e9}{2,}`,
}

// byteCheckAlphabet draws the runes and bytes a text is made of: ASCII,
// Latin-1 and Cyrillic letters, the folding oddities, invalid bytes.
var byteCheckAlphabet = []string{
	"a", "b", "k", "s", "x", "z", "A", "K", "S", " ", "\n", "$", "-", "0", "7", "\x00", "\x01", "\x7f",
	"é", "É", "а", "я", "Я", "€", "£", "\u2013", "\u200b", "\u200c", "\u212a", "\u017f", "\U0001F600",
	"\x80", "\xc3", "\xd0", "\xff", "\xe2\x80", "\uFFFD", "\xa3", "\xe9", "1", "O", ",", ".",
}

func randomText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(byteCheckAlphabet[rng.IntN(len(byteCheckAlphabet))])
	}
	return b.String()
}

// checkByteCheck fails when the byte check of pattern would skip a text
// the regex matches.
func checkByteCheck(t *testing.T, pattern, text string) {
	t.Helper()
	for _, latin1 := range []bool{false, true} {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		subject := text
		if latin1 {
			subject = latin1Runes(text)
		}
		// The run check runs on the same bytes (before a byte rule's
		// reading as Latin-1).
		if rc := newRunCheck(pattern); rc != nil && re.MatchString(subject) && !rc.possible(text) {
			t.Fatalf("latin1 %v: %q matches %q, but the run check skips it", latin1, pattern, text)
		}
		bc := newByteCheck(pattern, latin1)
		if bc == nil {
			continue
		}
		if re.MatchString(subject) && !bc.possible(text) {
			t.Fatalf("latin1 %v: %q matches %q, but the byte check %v skips it", latin1, pattern, text, bc.set)
		}
		ts := textBytes(text)
		if re.MatchString(subject) && !bc.set.intersects(&ts) {
			t.Fatalf("latin1 %v: %q matches %q, but the text's bytes miss the check", latin1, pattern, text)
		}
	}
}

// TestByteCheckNeverSkipsAMatch: over random texts from an alphabet of
// the bytes that matter, no regex is skipped on a text it matches.
func TestByteCheckNeverSkipsAMatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range byteCheckPatterns {
		for range 2000 {
			checkByteCheck(t, p, randomText(rng, 1+rng.IntN(6)))
		}
	}
}

// TestByteCheckSelects: the checks exist where they help and not where
// they cannot.
func TestByteCheckSelects(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		latin1  bool
		has     string // bytes the set must hold
		none    bool   // no check expected
	}{
		{pattern: byteCheckPatterns[0], has: "\xd0\xd1"},
		{pattern: `(?i)[а-я]{3}`, has: "\xd0\xd1"},
		{pattern: `\$\d`, has: "$"},
		{pattern: `\xe2\x80\x8b`, latin1: true, has: "\xe2"},
		{pattern: `[a-z]+`, none: true},
		{pattern: `x*`, none: true},
		{pattern: `.{3}`, none: true},
	} {
		bc := newByteCheck(tc.pattern, tc.latin1)
		if tc.none {
			if bc != nil {
				t.Errorf("%q: a check %v that cannot help", tc.pattern, bc.set)
			}
			continue
		}
		if bc == nil {
			t.Errorf("%q: no check", tc.pattern)
			continue
		}
		for i := 0; i < len(tc.has); i++ {
			if !bc.set.has(tc.has[i]) {
				t.Errorf("%q: check %v lacks %#x", tc.pattern, bc.set, tc.has[i])
			}
		}
	}
}

// TestByteCheckInvalidBytes: U+FFFD in a pattern needs any byte an
// invalid sequence may hold (too common to make a check of, but the set
// must say so for a rarer one to be preferred soundly).
func TestByteCheckInvalidBytes(t *testing.T) {
	re, _ := syntax.Parse(`\x{FFFD}`, syntax.Perl)
	set, ok := needBytes(re, false)
	if !ok || !set.has(0x80) || !set.has(0xEF) || !set.has(0xFF) || set.has('a') {
		t.Fatalf("needBytes(U+FFFD) = %v %v", set, ok)
	}
}

// TestByteCheckSkipsRules: a keyless body rule with a check is not run
// on a message without its bytes, and still hits one that has them.
func TestByteCheckSkipsRules(t *testing.T) {
	file := writeRules(t, "b.yaml", `rules: [{name: CYR, kind: body, regex: '[A-Za-z][\x{0430}\x{0435}]+[A-Za-z]', score: 1}]`)
	e := New(Config{Files: []string{file}})
	if err := e.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := e.Current()
	if ev := eval(t, s, envelope(), "Subject: x\r\n\r\nplain latin text\r\n"); ev.Has("CYR") {
		t.Fatal("hit without Cyrillic")
	}
	if n := e.Stats()[0].Evaluations; n != 0 {
		t.Fatalf("rule ran %d times on a text without its bytes", n)
	}
	if ev := eval(t, s, envelope(), "Subject: x\r\n\r\nplain p\u0430ypal text\r\n"); !ev.Has("CYR") {
		t.Fatal("no hit with a Cyrillic a")
	}
}

func envelope() filter.Envelope { return filter.Envelope{} }

// FuzzByteCheck: for any pattern and text, a byte check never skips a
// match.
func FuzzByteCheck(f *testing.F) {
	for i, p := range byteCheckPatterns {
		f.Add(p, byteCheckAlphabet[i%len(byteCheckAlphabet)]+"xa\u0430b")
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(pattern) > 200 || len(text) > 200 || !utf8.ValidString(pattern) {
			return
		}
		checkByteCheck(t, pattern, text)
	})
}

// TestByteCheckFewBytes: a check of a few bytes scans with IndexByte and
// answers as the table does, at any position of a long text.
func TestByteCheckFewBytes(t *testing.T) {
	for _, p := range []string{`\x00`, `\$\d`, `[а-я]`, `[\x01-\x03]`, `[\x01-\x08]`} {
		bc := newByteCheck(p, !strings.Contains(p, "а"))
		if bc == nil {
			t.Fatalf("%q: no check", p)
		}
		if (len(bc.few) > 0) != (bc.set.share() > 0 && countBytes(bc) <= maxFewBytes) {
			t.Fatalf("%q: few %q for %d bytes", p, bc.few, countBytes(bc))
		}
		long := strings.Repeat("plain text, no such byte. ", 400)
		for _, at := range []int{0, 1, 31, 32, 33, len(long) / 2, len(long) - 1} {
			for b := range 256 {
				text := long[:at] + string(rune(0)) + long[at:]
				text = text[:at] + string([]byte{byte(b)}) + text[at+1:]
				if got, want := bc.possible(text), bc.in[b]; got != want {
					t.Fatalf("%q: byte %#x at %d: possible %v, want %v", p, b, at, got, want)
				}
			}
		}
	}
}

func countBytes(bc *byteCheck) int {
	n := 0
	for _, in := range bc.in {
		if in {
			n++
		}
	}
	return n
}

// TestHasAny: the four-at-a-time scan finds a byte wherever it is.
func TestHasAny(t *testing.T) {
	var in [256]bool
	in['#'], in[0xd0] = true, true
	base := strings.Repeat("abcdefghij", 3)
	for n := 0; n <= len(base); n++ {
		s := base[:n]
		if hasAny(&in, s) {
			t.Fatalf("found a byte in %q", s)
		}
		for p := 0; p < n; p++ {
			for _, b := range []byte{'#', 0xd0} {
				x := []byte(s)
				x[p] = b
				if !hasAny(&in, string(x)) {
					t.Fatalf("missed %q at %d of %q", b, p, x)
				}
			}
		}
	}
}
