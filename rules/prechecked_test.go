package rules

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// precheckedPatterns are the prechecked patterns of the relay parser and the evaluations.
func precheckedPatterns() []*precheckedRE {
	out := []*precheckedRE{rcvDate, rcvID, rcvHeloEq, rcvHeloCmd, rcvBy, rcvAuthWith, rcvAuthPfx, rcvEnvFrom,
		rcvFromBy, rcvBracketIP, rcvAnyIP, rcvLocalhost, rcvV4Mapped, rcvEximHelo, rcvEximIdent}
	for _, f := range rcvForms {
		if f.when != nil {
			out = append(out, f.when)
		}
		out = append(out, f.re)
	}
	out = append(out, rcvIgnore...)
	// The header and MIME evaluations' own.
	return append(out, saGmailXReceived1, saGmailXReceived2, saGmailESMTPSA, saGmailFrom, saOutlookMID, saRcvdDate,
		saRatwareMID, saSubjReplyFw, saCapsCharsetWord, saDateComment, saFetchmailLocal, saQmailInvoked, saFetchmailBy,
		saDots, saFreemailAllow, saASCIICharset, saISOCharset, saISOGood, saFieldLine, saHeaderLine)
}

// receivedSamples are Received values of many MTAs, and mutations of them
// (cut, joined, characters swapped for the patterns' punctuation), so
// that both answers of every pattern are exercised.
func receivedSamples(n int) []string {
	base := []string{
		"from mail.example.org (mail.example.org [192.0.2.10]) by mx.example.net with ESMTPS id 4Ab3Cd5Ef6; Tue, 1 Dec 2026 08:00:00 +0000",
		"from europe.std.com (europe.std.com [199.172.62.20]) by mail.netnoteinc.com (Postfix) with ESMTP id 392E1114061 for <foo@foo.com>; Fri, 20 Apr 2001 21:34:46 +0000 (Eire)",
		"(from daemon@localhost) by europe.std.com (8.9.3/8.9.3) id RAA09630 for tbtf-outgoing; Fri, 20 Apr 2001 17:31:18 -0400 (EDT)",
		"from [208.192.102.193] (ppp0c199.std.com [208.192.102.199]) by world.std.com (8.9.3/8.9.3) with ESMTP id RAA8416421",
		"from [204.245.199.98] (helo=zinfandel.lacita.com) by www.linux.org.uk with esmtp (Exim 3.13 #1) id 14lYR6-0008Iv-00",
		"from unknown (HELO x) (203.0.113.5) by y with SMTP; 1 Jan 2020 00:00 +0000",
		"from x ([IPv6:2001:db8::1]) by y with ESMTPSA id z",
		"from mx.google.com (mx.google.com. [2607:f8b0:4864:20::b2f]) by mx.example.com with ESMTPS id a1si; Mon, 02 Nov 2026 10:00:00 -0800 (PST)",
		"from EUR05-AM6-obe.outbound.protection.outlook.com (mail-am6eur05on2099.outbound.protection.outlook.com. [40.107.22.99]) by mx.example.com with Microsoft SMTP Server (version=TLS1_2) id 15.20.1234.5",
		"from host (HELO host.example) (user@198.51.100.1) (envelope-sender <a@b.c>) by q.example with SMTP",
		"from localhost (localhost [127.0.0.1]) by h.example (Postfix) with ESMTP id 1; Sun, 1 Mar 2026 01:02:03 +0100",
		"from h ([::ffff:10.1.2.3]) by m with LMTPA; return-path: <x@y> envelope-from=z@w",
		"from host ([10.0.0.1]) by ex.example.com with Microsoft SMTPSVC(6.0.3790.4675); Tue, 1 Dec 2026 08:00:00 +0000",
		"from AM0PR.eurprd.prod.outlook.com (2603:10a6:208::1) by AM0PR.outlook.com (2603:10a6:208::2) with Microsoft SMTP Server (version=TLS1_2, cipher=X) id 15.20.1234.5 via Frontend Transport",
		"from alias by host.example ; 1 Dec 2026",
		"0:0:0:0:0:ffff:192.0.2.1",
		"::FFFF:198.51.100.9",
	}
	rng := rand.New(rand.NewPCG(7, 11))
	punct := []string{" ", "(", ")", "[", "]", ";", "@", "=", ".", ":", "by ", "with ", "helo=", "HELO ", "Exim", "(Postfix) with", "ESMTPA", "1.2.3.4", "\t", "é", "\xff"}
	out := slices.Clone(base)
	for len(out) < n {
		s := base[rng.IntN(len(base))]
		for range 1 + rng.IntN(4) {
			i := rng.IntN(len(s) + 1)
			switch rng.IntN(3) {
			case 0:
				s = s[:i] + punct[rng.IntN(len(punct))] + s[i:]
			case 1:
				j := min(len(s), i+rng.IntN(12))
				s = s[:i] + s[j:]
			default:
				o := base[rng.IntN(len(base))]
				s = s[i:] + " " + o[:rng.IntN(len(o)+1)]
			}
		}
		out = append(out, s)
	}
	return out
}

// generate returns a random string that the syntax tree re describes
// (anchors and word boundaries aside: the caller keeps what matches).
func generate(rng *rand.Rand, re *syntax.Regexp, b *strings.Builder) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && rng.IntN(2) == 0 {
				r = unicode.SimpleFold(r)
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return
		}
		k := rng.IntN(len(re.Rune)/2) * 2
		lo, hi := re.Rune[k], min(re.Rune[k+1], re.Rune[k]+200)
		b.WriteRune(lo + rune(rng.IntN(int(hi-lo)+1)))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte("ab .:;()[]@=x"[rng.IntN(13)])
	case syntax.OpCapture:
		generate(rng, re.Sub[0], b)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			generate(rng, s, b)
		}
	case syntax.OpAlternate:
		generate(rng, re.Sub[rng.IntN(len(re.Sub))], b)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 3
		switch re.Op {
		case syntax.OpPlus:
			lo, hi = 1, 4
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 {
				hi = lo + 3
			}
		}
		for range lo + rng.IntN(hi-lo+1) {
			generate(rng, re.Sub[0], b)
		}
	}
}

// matchingSamples returns strings that p's pattern matches, generated
// from its syntax, some inside text of the kind it reads.
func matchingSamples(t *testing.T, p *precheckedRE, rng *rand.Rand, n int) []string {
	tree, err := syntax.Parse(p.String(), syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	tree = tree.Simplify()
	var out []string
	for range 20 * n {
		if len(out) == n {
			break
		}
		var b strings.Builder
		generate(rng, tree, &b)
		s := b.String()
		switch rng.IntN(3) {
		case 0:
			s += " by x.example with ESMTP id 1; 1 Dec 2026"
		case 1:
			s += "esmtp id 1"
		}
		if p.re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

// TestPrecheckedSameAnswers: a prechecked pattern answers every call as
// its regexp does, on Received values and on strings generated to match
// each pattern.
func TestPrecheckedSameAnswers(t *testing.T) {
	t.Parallel()
	samples := receivedSamples(400)
	rng := rand.New(rand.NewPCG(3, 5))
	for _, p := range precheckedPatterns() {
		hits := 0
		own := matchingSamples(t, p, rng, 30)
		if len(own) == 0 {
			t.Errorf("%s: no matching string generated", p)
		}
		for _, s := range append(own, samples...) {
			for _, x := range []string{s, strings.TrimPrefix(s, "from ")} {
				want := p.re.FindStringSubmatch(x)
				if got := p.FindStringSubmatch(x); !slices.Equal(got, want) {
					t.Fatalf("%s on %q: %q, regexp %q", p, x, got, want)
				}
				if got, want := p.MatchString(x), p.re.MatchString(x); got != want {
					t.Fatalf("%s MatchString %q: %v, regexp %v", p, x, got, want)
				}
				if got, want := p.ReplaceAllString(x, "#"), p.re.ReplaceAllString(x, "#"); got != want {
					t.Fatalf("%s ReplaceAllString %q: %q, regexp %q", p, x, got, want)
				}
				if got, want := p.FindAllStringSubmatch(x, -1), p.re.FindAllStringSubmatch(x, -1); len(got) != len(want) {
					t.Fatalf("%s FindAllStringSubmatch %q: %q, regexp %q", p, x, got, want)
				}
				if p.at != nil {
					checkIndex(t, p, x)
				}
				if want != nil {
					hits++
				}
			}
		}
		t.Logf("%s: %d hits", p, hits)
	}
}

// TestRcvStrip: the byte loop replaces what SpamAssassin's class does.
func TestRcvStrip(t *testing.T) {
	re := regexp.MustCompile(`[\s\x00#\[\]()<>|]`)
	for _, s := range append(receivedSamples(500), "", "a\x00b", "\x0b\u00a0|é#", "\xff(\xfe)") {
		if got, want := rcvStrip(s), re.ReplaceAllString(s, "!"); got != want {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	}
}

// checkIndex fails t when p.Index(s) is not where the regexp's leftmost
// match starts, or when the match from there is not the regexp's.
func checkIndex(t *testing.T, p *precheckedRE, s string) {
	t.Helper()
	want := -1
	if loc := p.re.FindStringIndex(s); loc != nil {
		want = loc[0]
	}
	got := p.Index(s)
	if got != want {
		t.Fatalf("%s Index %q: %d, regexp %d", p, s, got, want)
	}
	if got >= 0 && !slices.Equal(p.re.FindStringSubmatch(s[got:]), p.re.FindStringSubmatch(s)) {
		t.Fatalf("%s on %q from %d: %q, regexp %q", p, s, got, p.re.FindStringSubmatch(s[got:]), p.re.FindStringSubmatch(s))
	}
}

// TestPrecheckedIndex: Index finds the regexp's leftmost match on texts
// made of the patterns' pieces, many starts to a text (runs of spaces and
// semicolons, digits, dates one after another).
func TestPrecheckedIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	pieces := []string{" ", ";", "\t", "\f", " ;", "1", "12", "Tue, ", "Mon,", "1 Dec 2026 08:00:00 +0000", "Dec", "x", ":", "08:00",
		":00", "+0000", "é", "\xff", "\n", "  ", "2026 "}
	for _, p := range []*precheckedRE{rcvDate, saRcvdDate} {
		hits := 0
		for range 20000 {
			var b strings.Builder
			for range rng.IntN(14) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			checkIndex(t, p, b.String())
			if p.re.MatchString(b.String()) {
				hits++
			}
		}
		if hits < 500 {
			t.Fatalf("%s: only %d of the texts match", p, hits)
		}
	}
}

// FuzzPrecheckedIndex: Index agrees with the regexp on any text.
func FuzzPrecheckedIndex(f *testing.F) {
	for _, s := range []string{"; Tue, 1 Dec 2026 08:00:00 +0000", "by x with ESMTPS id 4; Tue, 1 Dec 2026 08:00:00 +0000 (UTC)",
		" ;;\t; 1 Jan 2 3:4 x", " 1 2 Dec 3 4:5:6 z 7 Jan 8 9:10:11 w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkIndex(t, rcvDate, s)
		checkIndex(t, saRcvdDate, s)
	})
}

// TestMustPrecheckStart: a pattern that reads before its match has no
// Index.
func TestMustPrecheckStart(t *testing.T) {
	for _, pat := range []string{`^a`, `(?m)x|^a`, `\ba`, `a\B`} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", pat)
				}
			}()
			mustPrecheckStart(pat, func(string, int) bool { return true })
		}()
	}
	mustPrecheckStart(`a$`, func(string, int) bool { return true })
}

// TestRcvCutDate: cutting the date from the suffix gives what the
// pattern over the whole value gives.
func TestRcvCutDate(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	samples := append(receivedSamples(2000), matchingSamples(t, rcvDate, rng, 300)...)
	for _, s := range append(samples, "", ";", " 1 Jan 2 3:4 x", "a ;;  \t; 1 Jan 2 3:4 x", "x;1 Jan 2 3:4 +0000",
		"a 1 b 1 Jan 2 3:4 x y", "Mon, 1 Jan 2 3:4:5 x", " Mon, 1 Jan 2 3:4:5 x", "\f\f\f 1 Jan 2 3:4 x;y;z") {
		if got, want := rcvCutDate(s), rcvDate.re.ReplaceAllString(s, ""); got != want {
			t.Fatalf("%q: %q, want %q", s, got, want)
		}
	}
}

// TestFoldRuns: the folding loops replace what SpamAssassin's patterns
// replace, on random texts of line ends, spaces and letters.
func TestFoldRuns(t *testing.T) {
	fold, rawFold := regexp.MustCompile(`\n[ \t]+`), regexp.MustCompile(`\r?\n\s+`)
	rng := rand.New(rand.NewPCG(4, 4))
	alphabet := []string{"\r", "\n", " ", "\t", "\f", "\v", "a", "bc", "\r\n", "\n\t"}
	folded, rawFolded := 0, 0
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		if got, want := saFold(s), fold.ReplaceAllString(s, " "); got != want {
			t.Fatalf("saFold(%q) = %q, want %q", s, got, want)
		} else if got != s {
			folded++
		}
		if got, want := saRawFold(s), rawFold.ReplaceAllString(s, " "); got != want {
			t.Fatalf("saRawFold(%q) = %q, want %q", s, got, want)
		} else if got != s {
			rawFolded++
		}
	}
	if folded < 1000 || rawFolded < 1000 {
		t.Fatalf("only %d and %d texts folded", folded, rawFolded)
	}
}
