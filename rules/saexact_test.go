package rules

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// exactInputs returns texts for the differential tests: the repository's
// mail, and random texts built from the pieces the patterns look at
// (header names, spaces of several kinds, line ends, angle brackets,
// repeated words, an invalid byte), n of them.
func exactInputs(t *testing.T, rng *rand.Rand, n int, pieces []string) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b), strings.ReplaceAll(string(b), "\r\n", "\n"))
	}
	for range n {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		out = append(out, b.String())
	}
	return out
}

// checkExact compares an exact evaluation with regexp2 on inputs, and
// fails unless both answers occur often enough to mean something.
func checkExact(t *testing.T, pattern string, inputs []string) {
	t.Helper()
	re, err := compileBacktrack(pattern)
	if err != nil {
		t.Fatal(err)
	}
	// A pre-checked evaluation runs this same regexp2 after its check:
	// with the engine's time limit, an input on which the limit is hit in
	// that run but not in the reference one (a loaded machine, -race)
	// would read as a disagreement. Both runs get ample time.
	re.MatchTimeout = time.Minute
	fn := exactFor(pattern, re)
	if fn == nil {
		t.Fatalf("no exact evaluation for %s", pattern)
	}
	c := &crule{exact: fn, exactText: saExactText[pattern]}
	cb := &crule{Rule: Rule{bytes: true}, exact: fn, exactText: saExactText[pattern]} // a byte rule's
	hits := 0
	for _, s := range inputs {
		want, err := re.MatchString(s)
		if err != nil {
			continue // regexp2 timed out: nothing to compare
		}
		if got := c.matchExact(s); got != want {
			t.Fatalf("%q: exact %v, regexp2 %v", s, got, want)
		}
		if want {
			hits++
		}
		if cb.exactText == nil {
			continue
		}
		if want, err := re.MatchString(latin1Runes(s)); err == nil && cb.matchExact(s) != want {
			t.Fatalf("%q as bytes: exact %v, regexp2 %v", s, !want, want)
		}
	}
	if hits < 100 || len(inputs)-hits < 100 {
		t.Fatalf("%d of %d inputs match: too few of one answer to compare", hits, len(inputs))
	}
}

func TestExactFromNameInMsg(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	pieces := []string{"From:", "From:", "from:", " ", " ", "  ", "\t", "\u00a0", "\u2028", "\n", "\n", "\r\n", "\r",
		"<", ">", "John", "John", "Smith", "Smith", "J", "x@y.z", "\xff", "é", "John Smith", "\nJohn Smith\n",
		"\nJohn Smith\r\n", "\nJohn Smith \n", "\n<John Smith\n", strings.Repeat("y", 700),
		"\nFrom: John Smith\n", "\nFrom:\n John Smith\n", strings.Repeat("é", 150), strings.Repeat("\n", 40)}
	inputs := exactInputs(t, rng, 10000, pieces)
	checkExact(t, `(?sm)^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)`, inputs)
}

// BenchmarkExact: each exact evaluation against regexp2 on the text-2k
// corpus message.
func BenchmarkExact(b *testing.B) {
	raw := benchcorpus.Tiers()[0].Raw
	msg := string(raw)
	v := &view{m: filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{}), set: &Set{}}
	all := v.saHeaderValue(parseSAHeaderSpec("ALL").sa)[0]
	patterns := slices.Sorted(maps.Keys(saExact))
	patterns = append(patterns, slices.Sorted(maps.Keys(saPrecheck))...)
	for i, pattern := range patterns {
		re, err := compileBacktrack(pattern)
		if err != nil {
			b.Fatal(err)
		}
		c := &crule{exact: exactFor(pattern, re)}
		name := fmt.Sprint(i)
		text := msg // the full rule's text; the others test the ALL header
		switch {
		case strings.HasPrefix(pattern, "(?ism)"):
			text = all
		case strings.HasPrefix(pattern, "(?mi)"):
			text = "sender@example.org" // HK_RANDOM_FROM's From:addr
		}
		b.Run("regexp2/"+name, func(b *testing.B) {
			for b.Loop() {
				btMatch(re, text)
			}
		})
		b.Run("exact/"+name, func(b *testing.B) {
			for b.Loop() {
				c.matchExact(text)
			}
		})
	}
}

func TestExactHeaderPairs(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	pieces := []string{"\nFrom: ", "\nfrom: ", "\nFROM: ", "\nTo: ", "\nto: ", "\nSubject: ", "Subject: ", "To: ", "From: ",
		"\n", "\n", "\n\n", " ", "\t", "\u00a0", "<", "<", ">", ">", ",", ":", "a@b.c", "A@B.C", "a@b.c", "x", "X", "Re ",
		"\u212a", "k", "\u017f", "s", "\u0130", "i", "\xff", "é", "É", "0", strings.Repeat("y", 90), strings.Repeat("z", 150),
		strings.Repeat("w", 210), "\nX-Other: v"}
	inputs := exactInputs(t, rng, 5000, pieces)
	// Headers shaped like the patterns, with the same address or a near
	// one in a later line, and random damage.
	addrs := []string{"a@b.c", "A@B.c", "a@b.cd", "z@b.c", "@b.c", "a@@b.c", "a@b.c@b.c", "\u212a@b.c", "k@b.c", "x", "x,y", "\u0130@i.c", "s\u017f@b.c"}
	names := []string{"From", "To", "Subject", "from", "TO", "X-Mid", "Received"}
	for range 14000 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString("\n")
			b.WriteString(names[rng.IntN(len(names))])
			b.WriteString(": ")
			switch rng.IntN(5) {
			case 0:
				b.WriteString(addrs[rng.IntN(len(addrs))])
			case 1:
				b.WriteString("Name " + strings.Repeat("n", rng.IntN(90)) + " <" + addrs[rng.IntN(len(addrs))] + ">")
			case 2:
				b.WriteString("Re: " + strings.Repeat("q", []int{rng.IntN(110), 95, 96, 97}[rng.IntN(4)]) + addrs[rng.IntN(len(addrs))] + []string{" ", ":", ",", "z", ">", "", "\u00a0"}[rng.IntN(7)] + "tail")
			case 3:
				b.WriteString(strings.Repeat("l", rng.IntN(220)))
			default:
				b.WriteString("<" + addrs[rng.IntN(len(addrs))] + ">, <" + addrs[rng.IntN(len(addrs))] + ">")
			}
			if rng.IntN(4) == 0 {
				b.WriteString("\n")
			}
		}
		x := []byte(b.String())
		for range rng.IntN(3) {
			if len(x) > 0 {
				x[rng.IntN(len(x))] = "\n <>,:aA@"[rng.IntN(9)]
			}
		}
		inputs = append(inputs, string(x)+"\n")
	}
	for _, pattern := range []string{
		`(?ism)\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: (?:[^\n]{0,80}<)?\1[>,\s\n]`,
		`(?ism)\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From: (?:[^\n]{0,80}<)?\1[>,\s\n]`,
		`(?ism)\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*Subject: [^\n]{0,100}\1[>,:\s\n]`,
		`(?ism)\nTo: (?:[^\n<]{0,80}<)?([^\n\s>,]+)>?\n+(?:[^\n]{1,200}\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]`,
		`(?ism)\nFrom: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: [^\n]+@\1[>,\s\n]`,
	} {
		t.Run(pattern[7:22], func(t *testing.T) { checkExact(t, pattern, inputs) })
	}
}

func TestExactRandHeader(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 16))
	names := []string{"MIME-Version", "X-Mailer-Id", "Abcd-Efg", "Abc-Defg", "abc-def", "ABCD-EFGH", "Content-Xyzw",
		"List-Unsub", "Xxxx-Yyyy-Zzzz", "\u212aelv-Abcd", "Return-Pathx", "Received-SPFx", "Abcd-Ef", "Ab-Cdefg", "Thread-Index",
		"Feedback-Id", "Message-ID", "X-Abcd-Efgh", "abcd-\u00e9fgh", "Abcd--Efgh"}
	values := []string{" 1234567", "\t12ab.cd", " 1", "  9abcdef-xy", ": 1234567", " a123456", "\u00a01234567", " \u0661234567",
		" 1234567 ", " 123456\n\n", " 12.3-4_5", " 1 2 3 4 5 6 7", "1234567", " 0abcdef.x.y", " 9" + strings.Repeat("f", 30)}
	var inputs []string
	for range 30000 {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(names[rng.IntN(len(names))])
			b.WriteString(":")
			b.WriteString(values[rng.IntN(len(values))])
			b.WriteString("\n")
		}
		x := []byte(b.String())
		if rng.IntN(3) == 0 {
			x[rng.IntN(len(x))] = " -:a1\n"[rng.IntN(6)]
		}
		inputs = append(inputs, string(x))
	}
	inputs = append(inputs, exactInputs(t, rng, 0, nil)...)
	checkExact(t, `(?ism)^(?!Accept-Language|Authentication-Results|Content-|DomainKey-Signature|DKIM-|List-|MIME-|Received-SPF|Return-Path|Thread-|User-Agent|Tracking-Code)(?:[a-z]{4,}-[a-z]{3,}|[a-z]{3,}-[a-z]{4,}):\s+\d(?=\S{6,}\s*$)[\da-f]*(?:[-.]\w+)*\s*$`, inputs)
	// The pre-check itself turns away most of them: what the shortcut is for.
	rejected := 0
	for _, s := range inputs {
		if !randHeaderPossible([]rune(s)) {
			rejected++
		}
	}
	if rejected < len(inputs)/10 {
		t.Errorf("the pre-check turned away %d of %d", rejected, len(inputs))
	}
}

func TestExactRandomLocal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(17, 18))
	pieces := []string{"a", "e", "y", "b", "c", "k", "\u212a", "s", "x", "@", "@", ".", "-", "+", "mail.", "bounce-", "\n", "z",
		"ab", "abab", "AbaB", "aaaa", "bcdfg", "BCDFG", "aeiou", "example.org", "amazon.com", "kpmg", "1", " "}
	inputs := exactInputs(t, rng, 15000, pieces)
	checkExact(t, `(?mi)^(?!(?:mail|bounce)[_.-]|[^@]*(?:[+=^~#-]|mc(?:b|g)r|kpmg|nlpbr|ndqv|lcgc|cplpr)|[^@]{26}|.*?\@.{0,20}\b(?:cmp-info|cmpgnr|cnn|tori|jysk|amadeus|amazon)\.[a-z]{2,3}$)[^@]*(?:[bcdfgjklmnpqrtvwxz]{5}|[aeiouy]{5}|([a-z]{1,2})(?:\1){3})`, inputs)
	if randomLocalPossible([]rune("sender@example.org")) {
		t.Error("an ordinary address passes the pre-check")
	}
}

func TestExactHeaderUsers(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(19, 20))
	locals := []string{"abcd", "abcd12", "ABCD", "abc", "abcde1", "\u212abcd", "abcd\u0661", "ab", "abcdefgh99", strings.Repeat("q", 82) + "1", strings.Repeat("q", 80) + "12", strings.Repeat("q", 81) + "2"}
	domains := []string{"b.c", "B.C", "x.y>", "b", ">", ""}
	seps := []string{" ", "  ", "\t", "\n ", "", " \n\t", "\u00a0"}
	names := []string{"From", "To", "from", "TO", "Subject", "Cc"}
	addr := func() string {
		return locals[rng.IntN(len(locals))] + "@" + domains[rng.IntN(len(domains))]
	}
	var inputs []string
	for range 12000 {
		var b strings.Builder
		for range 1 + rng.IntN(5) {
			b.WriteString("\n" + names[rng.IntN(len(names))] + ":" + seps[rng.IntN(len(seps))])
			switch rng.IntN(6) {
			case 0:
				b.WriteString(addr())
			case 1:
				b.WriteString("Name " + strings.Repeat("n", rng.IntN(85)) + " <" + addr() + ">")
			case 2:
				b.WriteString("<" + addr() + ">")
			case 3:
				b.WriteString(addr() + []string{",", " ", "x", "@", "9", ""}[rng.IntN(6)] + "z")
			case 4:
				b.WriteString(strings.Repeat("l", rng.IntN(120)))
			default:
				b.WriteString("x <" + addr() + ">, y <" + addr() + ">")
			}
			if rng.IntN(4) == 0 {
				b.WriteString("\n")
			}
		}
		b.WriteString("\n")
		inputs = append(inputs, b.String())
	}
	inputs = append(inputs, exactInputs(t, rng, 0, nil)...)
	for _, pattern := range []string{
		`(?ism)\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]+)\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1[\@>,\s\n]`,
		`(?ism)\nTo:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]+)\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*From:\s+(?:[^\n]{0,80}<)?\1[\@>,\s\n]`,
		`(?ism)\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]`,
		`(?ism)\nTo:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*From:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]`,
	} {
		t.Run(pattern[7:12], func(t *testing.T) { checkExact(t, pattern, inputs) })
	}
}
