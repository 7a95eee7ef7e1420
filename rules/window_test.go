package rules

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestWindowLen(t *testing.T) {
	for _, tc := range []struct {
		re   string
		want int
	}{
		{`abc`, 3},
		{`(?i)abc`, 3},
		{`(?i)kiss`, 3 + 1 + 2 + 2}, // K is 3 bytes, ſ 2
		{`\bfoo\b`, 3},
		{`foo.{0,20}bar`, 6 + 80},
		{`ab[0-9]{2,4}w`, 7},
		{`(?:one|three)s?`, 6},
		{`foo\s+bar`, 0},
		{`foo.*`, 0},
		{`^foo`, 0},
		{`foo$`, 0},
		{`foo.{0,300}`, 0},
	} {
		if got := windowLen(tc.re); got != tc.want {
			t.Errorf("windowLen(%q) = %d, want %d", tc.re, got, tc.want)
		}
	}
}

// windowSame builds a one-rule set with and without the prefilter and
// reports whether both give the same answer for body, and the answer.
func windowSame(t testing.TB, pattern, body string) (same, hit bool, ok bool) {
	t.Helper()
	mk := func(no bool) *Set {
		sp := &spec{rules: []Rule{
			{Name: "B", Kind: Body, Regex: pattern, Test: Match},
			{Name: "R", Kind: RawBody, Regex: pattern, Test: Match},
		}}
		s, err := compile(sp, compileOptions{noPrefilter: no})
		if err != nil {
			return nil
		}
		return s
	}
	with, without := mk(false), mk(true)
	if with == nil || without == nil {
		return false, false, false
	}
	raw := "Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
	msg := func() *filter.Message { return filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}) }
	a, err := with.Evaluate(context.Background(), msg())
	if err != nil {
		t.Fatal(err)
	}
	b, err := without.Evaluate(context.Background(), msg())
	if err != nil {
		t.Fatal(err)
	}
	return slices.Equal(names(a), names(b)), a.Has("B") || a.Has("R"), true
}

// TestWindowEquivalence: windowed regexes (bounded length, keyed) give the
// same hits as the regex over whole lines, on texts built to put word
// bytes, multi-byte runes and other key occurrences next to the window's
// edges.
func TestWindowEquivalence(t *testing.T) {
	t.Parallel()
	patterns := []string{
		`\bfoo\b`, `\Bfoo\b`, `(?i)\bfoo bar\b`, `foo\B`, `\bfoo.{0,5}bar\b`,
		`(?i)foo\W{0,3}bar`, `ab[0-9]{2,4}foo`, `(?i)foo(?:ing|ed|s)?\b`,
		`.{3}foo.{3}`, `[^x]{2}foo`, `\x{FFFD}foo`, `foo\x{FFFD}`, `é{1,2}foo`,
		`(?i)\bkiss\b`, `\bfoo[\s\S]{0,4}\b`, `(?:foo|bar)\b.\b(?:foo|bar)`,
	}
	pieces := []string{"foo", "bar", "FOO", "Bar", " ", "x", "_", "1", "é", "\xa9", "\xc3", "\xff", "\u212A", "iss", "kiss", "ab12", "ing", "-", ".", "\n", "\n\n", "ab123"}
	r := rand.New(rand.NewPCG(3, 3))
	hits := 0
	for range 3000 {
		var b strings.Builder
		for range 1 + r.IntN(20) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		p := patterns[r.IntN(len(patterns))]
		same, hit, ok := windowSame(t, p, b.String())
		if !ok {
			t.Fatalf("%q does not compile", p)
		}
		if !same {
			t.Fatalf("regex %q on %q: the prefilter with windows changed the hits", p, b.String())
		}
		if hit {
			hits++
		}
	}
	if hits < 200 {
		t.Fatalf("only %d of 3000 cases hit: the test proves little", hits)
	}
}

// FuzzWindow: for any regex and body, the prefiltered (windowed) set and
// the plain one hit the same rules.
func FuzzWindow(f *testing.F) {
	f.Add(`\bfoo\b`, "xfoo foo_ foo")
	f.Add(`(?i)foo.{0,4}bar`, "FOO éé bar")
	f.Add(`\x{FFFD}foo`, "\xc3foo \xa9foo")
	f.Add(`\Bfoo.\b`, "afoo\xff")
	f.Fuzz(func(t *testing.T, pattern, body string) {
		if len(pattern) > 200 || len(body) > 4000 {
			return
		}
		if same, _, ok := windowSame(t, pattern, body); ok && !same {
			t.Fatalf("regex %q on %q: prefilter changed the hits", pattern, body)
		}
	})
}

// TestSameRegexOnce: keyless body rules with the same regex share one
// answer, and a rule with another regex, or negated, keeps its own.
func TestSameRegexOnce(t *testing.T) {
	sp := &spec{rules: []Rule{
		{Name: "A", Kind: Body, Regex: `\b[A-Z]{20,}\b`, Test: Match},
		{Name: "B", Kind: Body, Regex: `\b[A-Z]{20,}\b`, Test: Match},
		{Name: "N", Kind: Body, Regex: `\b[A-Z]{20,}\b`, Test: Match, Negate: true},
		{Name: "C", Kind: Body, Regex: `\b[A-Z]{21,}\b`, Test: Match},
	}}
	s, err := compile(sp, compileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string][]string{
		"x ABCDEFGHIJKLMNOPQRST y":  {"A", "B"},
		"x ABCDEFGHIJKLMNOPQRSTU y": {"A", "B", "C"},
		"x abcdefghijklmnopqrst y":  {"N"},
	} {
		ev := eval(t, s, filter.Envelope{}, "Subject: s\r\n\r\n"+body+"\r\n")
		if got := names(ev); !slices.Equal(got, want) {
			t.Errorf("%q: hits %v, want %v", body, got, want)
		}
	}
}
