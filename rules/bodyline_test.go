package rules

import (
	"github.com/portcullis-mail/portcullis/filter"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The byte loops of the body evals against the regexes and rune loops
// they replaced.

var (
	refSpacedLine = regexp.MustCompile(`\S\s+\S`)
	refBase64Line = regexp.MustCompile(`^(?:[A-Za-z0-9+/=]{60,76} ){2}`)
)

func refSquashSpace(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		// A run of white space: a newline, then white space, then a
		// newline (\n+\s*\n+) makes it a line break.
		j, first, last := i, -1, -1
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if !unicode.IsSpace(r) {
				break
			}
			if r == '\n' {
				if first < 0 {
					first = j
				}
				last = j
			}
			j += n
		}
		switch {
		case first >= 0 && last > first:
			// Spaces before the first newline and after the last stay
			// spaces around the break.
			if first > i {
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
			if last+1 < j {
				b.WriteByte(' ')
			}
		default:
			b.WriteByte(' ')
		}
		i = j
	}
}

func refAppendSquashed(b, t []byte) []byte {
	for i := 0; i < len(t); {
		if n := htmlSpace(t[i:]); n > 0 {
			for n > 0 {
				i += n
				n = htmlSpace(t[i:])
			}
			b = append(b, ' ')
			continue
		}
		b = append(b, t[i])
		i++
	}
	return b
}

func checkBodyLine(t *testing.T, l string) {
	t.Helper()
	if got, want := string(appendSquashed([]byte("x"), []byte(l))), string(refAppendSquashed([]byte("x"), []byte(l))); got != want {
		t.Errorf("appendSquashed(%q) = %q, want %q", l, got, want)
	}
	if got, want := spacedLine(l), refSpacedLine.MatchString(l); got != want {
		t.Errorf("spacedLine(%q) = %v, the regex says %v", l, got, want)
	}
	if got, want := base64Line(l), refBase64Line.MatchString(l); got != want {
		t.Errorf("base64Line(%q) = %v, the regex says %v", l, got, want)
	}
	if got, want := hasWordRune(l), strings.IndexFunc(l, isWordRune) >= 0; got != want {
		t.Errorf("hasWordRune(%q) = %v, want %v", l, got, want)
	}
	var fields []string
	for i, j := nextField(l, 0); i < len(l); i, j = nextField(l, j) {
		fields = append(fields, l[i:j])
	}
	if want := strings.Fields(l); !slices.Equal(fields, want) {
		t.Errorf("nextField splits %q into %q, strings.Fields into %q", l, fields, want)
	}
	var want strings.Builder
	got := string(saSquashSpace([]byte("x"), l))
	refSquashSpace(&want, l)
	if got != "x"+want.String() {
		t.Errorf("saSquashSpace(%q) = %q, want %q", l, got, "x"+want.String())
	}
}

var bodyLineSeeds = func() []string {
	b64 := strings.Repeat("QUJD", 17) // 68 characters
	return []string{
		"", " ", "a", "a b", " a ", "ab\n", "a\vb", "a\u00a0b", "\xff \xfe", "é é", "a\t\t\nb",
		"\n\n", " \n \n x", "a\xc2\xa0\xc2b\xc2", "\xc2", "\xc2\xa0 \t\xc2\xa0x", "x\n\u2003\ny", "a\u0085b \u3000 c\u202f", "\u1680x\u00a0", "-- ++", "_", "\u0663", "\u2028x\u2029",
		b64 + " " + b64 + " ", b64 + " " + b64, b64[:59] + " " + b64 + " ", b64 + b64[:9] + " " + b64 + " ",
		b64 + b64[:8] + " " + b64 + " tail", b64 + "  " + b64 + " ", b64 + " " + b64 + "\n",
	}
}()

func TestBodyLineChecks(t *testing.T) {
	for _, l := range bodyLineSeeds {
		checkBodyLine(t, l)
	}
}

func FuzzBodyLineChecks(f *testing.F) {
	for _, l := range bodyLineSeeds {
		f.Add(l)
	}
	f.Fuzz(checkBodyLine)
}

// TestUppercaseMeasure: check_for_uppercase's measure counts capitals
// among letters and digits of the spaced body lines, as the switch it
// replaced did.
func TestUppercaseMeasure(t *testing.T) {
	body := strings.Repeat("HELLO World 42 ÉTÉ déjà vu, MIXED case TEXT here\n", 8) + "NOSPACESONTHISLINE\n"
	raw := "From: a@example.com\nSubject: x\n\n" + body
	s := mustBuild(t, Config{Files: []string{"testdata/sa-evals.cf"}})
	v := &view{m: filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}), set: s}
	lower, upper := 0, 0
	for _, l := range v.saBodyLines() {
		if !spacedLine(l) {
			continue
		}
		for _, c := range []byte(l) {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
				lower++
			case c >= 'A' && c <= 'Z':
				upper++
			}
		}
	}
	want := 100 * float64(upper) / float64(upper+lower)
	if got := v.measureUppercase(); got != want || want == 0 {
		t.Errorf("measureUppercase = %v, want %v", got, want)
	}
}
