package rules

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestNewTailCheck(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		bytes   bool
		want    *tailCheck
	}{
		{`(?m)^\s*(?:[a-z]+\s+){10}\.$`, false, &tailCheck{lit: ".", line: true}},
		{`foo\z`, false, &tailCheck{lit: "foo"}},
		{`(?i)bar$`, false, &tailCheck{lit: "bar", fold: true}},
		{`x(Bar)$`, false, &tailCheck{lit: "Bar"}},
		{`^\s*\S{1,60}X\s*(?:\n?\z)`, false, nil},
		{`abc(?:\n?\z)`, false, &tailCheck{lit: "abc", nlLast: true}},
		{`(?i)risk$`, false, nil},                                // k folds to the Kelvin sign
		{`(?i)risk$`, true, &tailCheck{lit: "risk", fold: true}}, // not in Latin-1
		{`foo$|bar$`, false, nil},
		{`a+$`, false, nil},
		{`é$`, false, nil},
		{`foo`, false, nil},
	} {
		got := newTailCheck(tt.pattern, tt.bytes)
		if got != nil {
			got.litNL = ""
		}
		if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
			t.Errorf("%s: %+v, want %+v", tt.pattern, got, tt.want)
		}
	}
}

// TestTailCheckSound: for every rule of the default and SpamAssassin sets
// with a tail check, no value the check refuses is one its regex matches,
// on the lines and texts of the test mail and on values built to end in
// the rule's literal, in every case, before every kind of line end.
func TestTailCheckSound(t *testing.T) {
	t.Parallel()
	saFiles(t)
	s := mustBuild(t, Config{Default: true, SpamAssassin: "/usr/share/spamassassin"})
	var base []string
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		base = append(base, string(b))
		base = append(base, strings.Split(string(b), "\n")...)
	}
	rng := rand.New(rand.NewPCG(51, 52))
	ends := []string{"", "\n", "\r\n", "\r", " ", "\nmore", "\n\n", "x"}
	base = append(base, "one two three four five six seven eight nine ten .", "Hi,", "Outlook", "PHP", "7bit", "UNSET",
		"a@PayPal.COM", "x@ebay.com", "bob@gmail.com", "shop.INFO", "Mon, 1 Dec 2026 10:00:00 +0000", "Returned Mail",
		"<BAYC12-PASMTP0123456789ABCDEFGHIJKLMNO@CEZ.ICE>", "http://a.example/wp-content/x/", "[ ip=192.0.2.1 rdns= helo=x ]")
	checked, refused, matched := 0, 0, 0
	for _, c := range s.rules {
		if c.tail == nil {
			continue
		}
		checked++
		vals := base
		for range 300 {
			lit := []byte(c.tail.lit)
			for i := range lit {
				if rng.IntN(2) == 0 && 'a' <= lit[i] && lit[i] <= 'z' {
					lit[i] -= 'a' - 'A'
				}
			}
			v := base[rng.IntN(len(base))]
			v = v[:rng.IntN(len(v)+1)] + string(lit) + ends[rng.IntN(len(ends))]
			if rng.IntN(3) == 0 {
				v += base[rng.IntN(len(base))]
			}
			vals = append(vals, v)
		}
		// Values the regex matches, with more after them: with (?m) the
		// match then ends a line inside the value.
		hits := 0
		for _, x := range base {
			if hits < 50 && regexMatch(c.reD, c.re, x, c.bytes) {
				hits++
				for _, e := range ends {
					vals = append(vals, x+e, x+e+base[rng.IntN(len(base))])
				}
			}
		}
		matched += min(hits, 1)
		for _, x := range vals {
			if c.tail.possible(x) {
				continue
			}
			refused++
			if regexMatch(c.reD, c.re, x, c.bytes) {
				t.Fatalf("%s (%s): the tail check refuses %.200q, which the regex matches", c.Name, c.Regex, x)
			}
		}
	}
	if checked < 10 || refused < 1000 || matched < 10 {
		t.Fatalf("%d rules with a tail check (%d matching a value), %d values refused: too few to mean anything", checked, matched, refused)
	}
	t.Logf("%d rules (%d matching a value), %d values refused", checked, matched, refused)
}

// FuzzTailCheck: a value the check refuses is one the regex does not
// match, for patterns of each kind of ending.
func FuzzTailCheck(f *testing.F) {
	patterns := []string{`(?m)^\s*(?:[a-z]+\s+){10}\.$`, `foo\z`, `(?i)bar$`, `x(Bar)$`, `abc(?:\n?\z)`, `(?im)^<\w+@\w+\.COM>$`, `(?i)\.info(?:\n?\z)`}
	type pair struct {
		re *regexp.Regexp
		t  *tailCheck
	}
	var ps []pair
	for _, p := range patterns {
		t := newTailCheck(p, false)
		if t == nil {
			f.Fatalf("%s: no tail check", p)
		}
		ps = append(ps, pair{regexp.MustCompile(p), t})
	}
	for _, s := range []string{"a b c d e f g h i j .\nx", "FOO", "xbar\n", "xBar", "ABC\n", "<a@b.com>\n<c@d.com>", "x.INFO\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x string) {
		for _, p := range ps {
			if !p.t.possible(x) && p.re.MatchString(x) {
				t.Fatalf("%s: refuses %q, which it matches", p.re, x)
			}
		}
	})
}
