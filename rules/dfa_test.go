package rules

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
)

var dfaLines = flag.Int("dfa.lines", 150, "TestDFASpamAssassinPatterns: text lines tried per pattern (more: -dfa.lines 5000)")

// dfaInputs returns lines of real mail and of the speed tiers, whole
// paragraphs of the tiers, and random and broken text.
func dfaInputs(t testing.TB, n int) []string {
	t.Helper()
	var lines []string
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	files = append(files, "testdata/sa-sample-nonspam.eml", "testdata/sa-engines.eml", "testdata/sa-headers.eml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(string(b), "\n")...)
	}
	for _, tier := range benchcorpus.Tiers()[:2] {
		lines = append(lines, strings.Split(string(tier.Raw), "\n")...)
	}
	rng := rand.New(rand.NewPCG(18, 18))
	var out []string
	for len(out) < n && len(lines) > 0 {
		l := lines[rng.IntN(len(lines))]
		if strings.TrimSpace(l) == "" {
			continue
		}
		out = append(out, l)
	}
	// Broken: an invalid byte, a cut sequence, Latin-1 bytes.
	for i := range out {
		if i%5 == 0 && len(out[i]) > 2 {
			j := rng.IntN(len(out[i]))
			out[i] = out[i][:j] + []string{"\xff", "\xe2\x82", "\xe9", "\xc3\xa9", "\x00"}[i/5%5] + out[i][j:]
		}
	}
	for _, tier := range benchcorpus.Tiers()[:1] {
		_, body, _ := strings.Cut(string(tier.Raw), "\r\n\r\n")
		out = append(out, body, strings.ReplaceAll(body, "\r\n", " "))
	}
	alphabet := []string{"a", "e", "o", "s", "t", " ", "\n", "é", "\xff", "$", "1", "0", ".", ",", "!", "@", "http://", "www.", "Viagra", "сайт", "€", "_", "-", "%", "FREE", "money", "account"}
	for range n / 4 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		out = append(out, b.String())
	}
	return out
}

// TestDFASpamAssassinPatterns: every regex of the default pipeline's rules
// (the embedded set and SpamAssassin's: rules' own, RE2 supersets, leads)
// gives through its DFA the answer Go's regexp gives, on real text and
// random and broken text, read as UTF-8 and, for byte rules, as Latin-1.
func TestDFASpamAssassinPatterns(t *testing.T) {
	t.Parallel()
	saFiles(t)
	s := mustBuild(t, Config{Default: true, SpamAssassin: "/usr/share/spamassassin"})
	inputs := dfaInputs(t, *dfaLines)
	type pair struct {
		d     *dfa.DFA
		re    *regexp.Regexp
		bytes bool
	}
	seen := map[pair]bool{}
	var pairs []pair
	add := func(d *dfa.DFA, re *regexp.Regexp, bytes bool) {
		if re == nil {
			return
		}
		if d == nil {
			t.Fatalf("no DFA for %.80q", re.String())
		}
		if p := (pair{d, re, bytes}); !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	for _, c := range s.rules {
		add(c.reD, c.re, c.bytes)
		add(c.preD, c.btPre, c.bytes)
		if c.lead != nil {
			add(c.lead.d0, c.lead.at0, c.bytes)
			add(c.lead.d1, c.lead.at1, c.bytes)
		}
	}
	if len(pairs) < 1000 {
		t.Fatalf("only %d regexes with a DFA", len(pairs))
	}
	hits := 0
	for _, p := range pairs {
		for _, x := range inputs {
			var got, want bool
			if p.bytes {
				got, want = p.d.MatchLatin1(x), p.re.MatchString(latin1Runes(x))
			} else {
				got, want = p.d.MatchString(x), p.re.MatchString(x)
			}
			if got != want {
				t.Fatalf("%q (bytes %v) on %q: dfa %v, regexp %v", p.re.String(), p.bytes, x, got, want)
			}
			if got {
				hits++
			}
		}
	}
	full := 0
	for _, p := range pairs {
		if p.d.Full() {
			full++ // refused or at its cap: Go's regexp answered
			t.Logf("answered by Go's regexp: %.80q", p.re.String())
		}
	}
	if hits < 100 {
		t.Fatalf("only %d matches: the inputs do not exercise the patterns", hits)
	}
	t.Logf("%d regexes × %d texts, %d matches, %d DFA cells, %d DFAs full", len(pairs), len(inputs), hits, dfa.ProcessCells(), full)
}

// BenchmarkDFA: the costliest regexes of the default pipeline over one
// 2 KB paragraph, Go's regexp against their DFA.
func BenchmarkDFA(b *testing.B) {
	saFiles(b)
	s, err := Build(Config{Default: true, SpamAssassin: "/usr/share/spamassassin"})
	if err != nil {
		b.Fatal(err)
	}
	_, body, _ := strings.Cut(string(benchcorpus.Tiers()[0].Raw), "\r\n\r\n")
	para := strings.ReplaceAll(body, "\r\n", " ")
	for _, name := range []string{"__TVD_PH_BODY_ACCOUNTS_POST", "__TO_YOUR_ACCT", "__LONGWORDS_A", "__LONGWORDS_B", "__LONGWORDS_C",
		"PC_DRUGS_OBFUSCATED", "__DRUGS_PAIN6", "__DRUGS_ERECTILE10", "__FRAUD_KDT", "PC_MIXED_SCRIPT_WORD"} {
		c := s.byName[name]
		if c == nil {
			b.Fatalf("no rule %s", name)
		}
		re, d := c.re, c.reD // a backtracking rule's RE2 superset runs first
		if c.bt != nil {
			re, d = c.btPre, c.preD
		}
		if re == nil || d == nil {
			b.Logf("%s: no RE2 regex with a DFA", name)
			continue
		}
		if d.MatchString(para) != re.MatchString(para) {
			b.Fatalf("%s: the DFA and regexp differ", name)
		}
		b.Run(name+"/regexp", func(b *testing.B) {
			b.SetBytes(int64(len(para)))
			for b.Loop() {
				re.MatchString(para)
			}
		})
		b.Run(name+"/dfa", func(b *testing.B) {
			b.SetBytes(int64(len(para)))
			for b.Loop() {
				d.MatchString(para)
			}
		})
	}
}
