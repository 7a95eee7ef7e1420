package rules

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestLeadOf(t *testing.T) {
	for _, tc := range []struct {
		re   string
		span int // 0: no lead
	}{
		{`\b(?:our company|we) (?:has |have )?\w+`, len("our company") + 1},
		{`(?i)\bfunds?\s+transfer`, len("fund")},
		{`(?:widow|sister)\s(?:of|to)\s.*`, len("sister of")},
		{`here are new products|\bour company \w+`, len("here are new products")},
		{`\w+ing now`, 0},   // the head is unbounded
		{`^funds \w+`, 0},   // anchored
		{`x\d+ percent`, 0}, // no key in a bounded head
	} {
		l, keys := newLead(tc.re)
		switch {
		case tc.span == 0:
			if l != nil {
				t.Errorf("%q: a lead (span %d, keys %q)", tc.re, l.span, keys)
			}
		case l == nil || l.span != tc.span:
			t.Errorf("%q: lead %+v keys %q, want span %d", tc.re, l, keys, tc.span)
		}
	}
}

// leadSame builds a one-rule set (body and raw body, as a byte rule too)
// with and without the prefilter and reports whether both hit the same.
func leadSame(t testing.TB, pattern, body string) (same, hit, ok bool) {
	t.Helper()
	mk := func(no bool) *Set {
		sp := &spec{rules: []Rule{
			{Name: "B", Kind: Body, Regex: pattern, Test: Match},
			{Name: "R", Kind: RawBody, Regex: pattern, Test: Match},
			{Name: "Y", Kind: Body, Regex: pattern, Test: Match, bytes: true},
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
	return slices.Equal(names(a), names(b)), len(a.Symbols) > 0, true
}

// TestLeadEquivalence: rules with a lead (a bounded keyed head, an
// unbounded rest) hit as the regex over whole lines does, on texts that
// put word bytes, multi-byte runes, invalid bytes and several key
// occurrences around the starts tried.
func TestLeadEquivalence(t *testing.T) {
	t.Parallel()
	patterns := []string{
		`\bfoo bar\s+\w+`, `(?i)\b(?:foo|barbaz)\s\w*x`, `\Bfoo.+bar`, `(?:éé|foo)o+\b`,
		`\x{FFFD}?foo\s*\S+`, `(?i)\bkiss\w*`, `(?:foo|bar) \d+`, `\bfoo\b.*\bbar\b`,
		`[^x]foo.*`, `.{2}foo\s+`, `\xe9foo.+`,
	}
	pieces := []string{"foo", "bar", "FOO", "barbaz", " ", "  ", "x", "_", "1", "22", "é", "\xa9", "\xc3", "\xe9", "\xff", "\u212A", "iss", "kiss", "ooo", "-", ".", "\n", "\n\n"}
	r := rand.New(rand.NewPCG(4, 4))
	hits := 0
	for _, p := range patterns {
		if l, _ := newLead(p); l == nil {
			t.Fatalf("%q has no lead: the test proves nothing for it", p)
		}
	}
	for range 3000 {
		var b strings.Builder
		for range 1 + r.IntN(24) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		p := patterns[r.IntN(len(patterns))]
		same, hit, ok := leadSame(t, p, b.String())
		if !ok {
			t.Fatalf("%q does not compile", p)
		}
		if !same {
			t.Fatalf("regex %q on %q: the lead changed the hits", p, b.String())
		}
		if hit {
			hits++
		}
	}
	if hits < 300 {
		t.Fatalf("only %d of 3000 cases hit: the test proves little", hits)
	}
}

// TestIsRuneStart: a position is a rune start as Go's regexp reads
// text[lo:], whatever the bytes before lo; FuzzShortcutsKeepHits found
// the first case (a Subject starting with a continuation byte) as a
// panic.
func TestIsRuneStart(t *testing.T) {
	for _, tc := range []struct {
		text  string
		lo, p int
		want  bool
	}{
		{"\x81losing", 0, 0, true},    // a stray continuation at the text's start
		{"\xc3\xa9abc", 1, 1, true},   // lo inside a rune: its first byte is read alone
		{"\xc3\xa9abc", 0, 1, false},  // inside é
		{"\xc3\xa9abc", 0, 2, true},   // after é
		{"a\x81\x81b", 0, 2, true},    // stray continuations, each read alone
		{"\xe2\x82\xacx", 1, 2, true}, // from lo, € is two stray bytes
		{"\xe2\x82\xacx", 0, 2, false},
	} {
		if got := isRuneStart(tc.text, tc.lo, tc.p); got != tc.want {
			t.Errorf("isRuneStart(%q, %d, %d) = %v, want %v", tc.text, tc.lo, tc.p, got, tc.want)
		}
		// What Go's regexp reads from lo decides.
		want := false
		for i := range tc.text[tc.lo:] {
			if tc.lo+i == tc.p {
				want = true
			}
		}
		if tc.want != want {
			t.Errorf("case %q %d %d: want %v, but ranging over the text gives %v", tc.text, tc.lo, tc.p, tc.want, want)
		}
	}
}

// FuzzLead: for any regex and body, the prefiltered set (with leads) and
// the plain one hit the same rules.
func FuzzLead(f *testing.F) {
	f.Add(`\bfoo bar\s+\w+`, "xfoo bar  baz foo bar")
	f.Add(`(?i)\b(?:foo|barbaz)\s\w*x`, "BARBAZ éx foo yx")
	f.Add(`\xe9foo.+`, "\xe9foo \xc3\xa9foo!")
	f.Fuzz(func(t *testing.T, pattern, body string) {
		if len(pattern) > 200 || len(body) > 4000 {
			return
		}
		if same, _, ok := leadSame(t, pattern, body); ok && !same {
			t.Fatalf("regex %q on %q: prefilter changed the hits", pattern, body)
		}
	})
}
