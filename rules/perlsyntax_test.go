package rules

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The regexes scanPerlSyntax replaced: the specification of its answers.
var (
	specLookaround = regexp.MustCompile(`\(\?<?[=!]`)
	specAtomic     = regexp.MustCompile(`\(\?>|[*+?}]\+`)
	specBackref    = regexp.MustCompile(`\\(?:[1-9]|k<|k\{|g\{?-?[0-9])`)
	specPerlOnly   = regexp.MustCompile(`\\[GcXKNC]|\(\?(?:R|[0-9]|\||\{|\?\{|&|P>|P=)|\(\*`)
	specEscaped    = regexp.MustCompile(`\\.`)
	specHighByte   = regexp.MustCompile(`\\x[89a-fA-F][0-9a-fA-F]|\\x\{[89a-fA-F][0-9a-fA-F]\}|[\x80-\xff]`)
)

func specPerlSyntax(scan string) perlSyntax {
	plain := specEscaped.ReplaceAllString(scan, "_") // escaped characters are literals
	return perlSyntax{
		perlOnly:   specPerlOnly.MatchString(scan),
		lookaround: specLookaround.MatchString(plain),
		atomic:     specAtomic.MatchString(plain),
		backref:    specBackref.MatchString(scan),
		highByte:   specHighByte.MatchString(scan) || !utf8.ValidString(scan),
	}
}

func checkPerlSyntax(t *testing.T, body string) {
	t.Helper()
	scan := stripEscapedBackslashes(body)
	if got, want := scanPerlSyntax(scan), specPerlSyntax(scan); got != want {
		t.Fatalf("%q: %+v, the regexes say %+v", body, got, want)
	}
}

// TestPerlSyntaxAgainstRegexps: scanPerlSyntax answers as the regexes
// did, on every regex line of SpamAssassin's rule files (when installed)
// and on random strings of the features' pieces.
func TestPerlSyntaxAgainstRegexps(t *testing.T) {
	files, _ := filepath.Glob("/usr/share/spamassassin/*.cf")
	lines := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			checkPerlSyntax(t, sc.Text())
			lines++
		}
		fh.Close()
	}
	pieces := []string{`\`, `\\`, `(`, `?`, `(?`, `*`, `+`, `}`, `=`, `!`, `<`, `>`, `{`, `-`, `|`, `&`, `P`, `R`, `1`, `0`, `9`,
		`k`, `g`, `x`, `8`, `f`, `F`, `a`, `G`, `c`, `X`, `K`, `N`, `C`, "\n", "é", "\u00ff", "\u0100", "€", "\xff", "\xc3", "_", " "}
	rng := rand.New(rand.NewPCG(21, 22))
	for range 20000 {
		var b strings.Builder
		for range 1 + rng.IntN(10) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		checkPerlSyntax(t, b.String())
	}
	t.Logf("%d rule file lines", lines)
}

func FuzzPerlSyntax(f *testing.F) {
	for _, s := range []string{`\bfoo(?=bar)`, `a*+`, `\(*`, `(?>x)`, `\g{-1}`, `\x{9f}`, "caf\u00e9", "\\\n(?!", `\\(?<=`, `(?P=n)`, "\\\xff+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 4096 {
			return
		}
		checkPerlSyntax(t, body)
	})
}
