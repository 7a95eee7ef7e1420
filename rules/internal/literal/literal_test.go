package literal

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		re   string
		want []string
	}{
		{`viagra`, []string{"viagra"}},
		{`(?i)ViAgRa`, []string{"viagra"}},
		{`\bbuy (?:now|today)\b`, []string{"buy now", "buy today"}},
		{`colou?r`, []string{"color", "colour"}},
		{`foo.*barbaz`, []string{"barbaz"}},
		{`(?:cheap|discount) \w+ (?:pills|meds)`, []string{"cheap ", "discount "}},
		{`[0-9]+`, nil},
		{`a.b`, nil},
		{`(?:abc)*`, nil},
		{`(?:abcd)+x`, []string{"abcdx"}},
		{`lot+(?:o|ery)`, []string{"lot"}},
		{`(?:hello|x) world`, []string{"hello world", "x world"}},
		{`ab|cd`, nil}, // too short to filter anything
		{`\$[0-9]+|dollars`, []string{"$0", "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "dollars"}},
		{`\$\w+|dollars`, []string{"$", "dollars"}},
		{`a|b`, nil},
		{`GTUBE-STANDARD`, []string{"gtube-standard"}},
		{`v[i1]agra`, []string{"v1agra", "viagra"}},
		{`(?i)привет`, nil}, // 64 case variants: too many
		{`(?i)vi\x{fa}va`, []string{"viÚva", "viúva"}},
		{`(?:the|and) +(?:son|wife)`, []string{" son", " wife"}}, // rarer than "the "
		{`[,.]\d{3}`, []string{",", "."}},                        // the longest when nothing rarer is usable
		{`привет`, []string{"привет"}},
	} {
		got := RequiredString(tc.re)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.re, got, tc.want)
		}
	}
}

func TestRarity(t *testing.T) {
	for k, want := range map[string]int{"": 0, " of": 2, "has been": 2, "the ": 2, ",": 1, "$": 3,
		"account": 7, "ccount": 6, "&#16": 6, "your.": 2} {
		if got := rarity(k); got != want {
			t.Errorf("rarity(%q) = %d, want %d", k, got, want)
		}
	}
}

func TestHazard(t *testing.T) {
	if !Hazard("\u212Aiss") || !Hazard("ca\u017Fino") || Hazard("kiss") {
		t.Fatal("Hazard misses the Kelvin sign or long s, or flags ASCII")
	}
}

// FuzzRequired checks the one property the prefilter depends on: when a
// regex matches a text, one of its keys occurs in the ASCII-lower-cased
// text (unless the text holds a Hazard rune).
func FuzzRequired(f *testing.F) {
	f.Add(`viagra`, "buy VIAGRA now")
	f.Add(`(?i)\bfree (?:money|cash)\b`, "get FREE Cash")
	f.Add(`colou?r`, "colour")
	f.Add(`(?i)kiss`, "\u212Aiss")
	f.Add(`[a-c]x{2,3}(?:yz|zz)`, "bxxxzz")
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(pattern) > 200 {
			return
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		keys := RequiredString(pattern)
		if keys == nil || !re.MatchString(text) || Hazard(text) {
			return
		}
		lt := []byte(text)
		for i, c := range lt {
			lt[i] = lower(c)
		}
		for _, k := range keys {
			if strings.Contains(string(lt), k) {
				return
			}
		}
		t.Fatalf("%q matches %q but none of its keys %q occurs", pattern, text, keys)
	})
}

// U+FFFD in a pattern also matches any invalid byte of the text (Go's
// regexp reads one as U+FFFD): it is never part of a key, as a literal
// or in a class.
func TestReplacementCharIsNoKey(t *testing.T) {
	for _, p := range []string{"\uFFFDabc", "abc\uFFFD", "abc[\uFFF0-\uFFFF]def", "(?i)abc\uFFFDdef"} {
		for _, k := range RequiredString(p) {
			if strings.ContainsRune(k, utf8.RuneError) {
				t.Errorf("%q: key %q holds U+FFFD", p, k)
			}
		}
		re := regexp.MustCompile(p)
		text := strings.ReplaceAll(strings.ReplaceAll(strings.TrimPrefix(p, "(?i)"), "\uFFFD", "\xff"), "[\uFFF0-\uFFFF]", "\xfe")
		if !re.MatchString(text) {
			t.Fatalf("%q does not match %q", p, text)
		}
		keys := RequiredString(p)
		found := keys == nil
		for _, k := range keys {
			found = found || strings.Contains(strings.ToLower(text), k)
		}
		if !found {
			t.Errorf("%q matches %q but none of its keys %q occurs", p, text, keys)
		}
	}
}
