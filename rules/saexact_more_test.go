package rules

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
)

// pieceInputs returns n random texts made of pieces (without the
// repository's mail, which these short values do not look like).
func pieceInputs(rng *rand.Rand, n, most int, pieces []string) []string {
	out := make([]string, 0, n)
	for range n {
		var b strings.Builder
		for range rng.IntN(most) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		out = append(out, b.String())
	}
	return out
}

func TestExactDateTZ(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	pieces := []string{"Mon, 1 Dec 2026 10:00:00 ", "+", "-", "0", "1", "2", "3", "4", "5", "9", "\n", " ", "x", "+0000", "-0500", "+1445", "+1500", "٣"}
	checkExact(t, `[-+](?!(?:0\d|1[0-4])(?:[03]0|[14]5))\d{4}$`, pieceInputs(rng, 20000, 8, pieces))
}

func TestExactBogusMIMEVersion(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	pieces := []string{"1.0", "1.0", "1", ".", "0", " ", "\n", "\r", "a", "_", "(", ")", "x1.0", "1.00", "é", "\u0660"}
	checkExact(t, `^(?!.*\b1\.0\b).+`, pieceInputs(rng, 20000, 6, pieces))
}

func TestExactHeloNotRDNS(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	pieces := []string{"[ ip=192.0.2.1", " rdns=", " rdns=", " helo=", " helo=", "mx.example.org", "MX.Example.ORG", "mx.example", "mx", "\u212a",
		"k", " ", "  ", "\t", "]", " ] [", "x", "\n", "by=a", "\u0130", "i"}
	inputs := pieceInputs(rng, 20000, 10, pieces)
	for range 10000 {
		a, b := pieces[5+rng.IntN(6)], pieces[5+rng.IntN(6)]
		inputs = append(inputs, "[ ip=192.0.2.1"+pieces[rng.IntN(len(pieces))]+" rdns="+a+" helo="+b+pieces[rng.IntN(len(pieces))]+" ]")
	}
	checkExact(t, `^[^\]]+ rdns=(\S+) helo=(?!(?i)\1)\S`, inputs)
}

func TestExactIPInRelay(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	ips := []string{"192.0.2.10", "10.1.2.3", "1.2.3.4", "4.3.2.1", "12.0.0.1"}
	bits := []string{"192-0-2-10", "10.2.1.3", "3-2-1-10", "1x2x3x4", "4.3.2.1", "1.2.3.45", "01.2.3.4", "12.0.0.12", " ", "]", "x", "rdns=", "helo=", ".", "-", "1", "2", "\n", "by=mx"}
	var inputs []string
	for range 30000 {
		var b strings.Builder
		b.WriteString("[ ip=" + ips[rng.IntN(len(ips))] + " ")
		for range rng.IntN(8) {
			b.WriteString(bits[rng.IntN(len(bits))])
		}
		inputs = append(inputs, b.String())
	}
	checkExact(t, `^\[ ip=(\d+)\.(\d+)\.(\d+)\.(\d+) (?:[^\]]* )?(?:rdns|helo)=\S*(?:\1\D\2\D\3\D\4|\4\D\3\D\2\D\1)`, inputs)
}

func TestExactToBrandSubject(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(29, 30))
	pieces := []string{"To: ", "to:\t", "TO:", "To:", "\nTo: ", "Subject: ", "\nSubject: ", "\nsubject: ", "\nSUBJECT: \"", "\n", "\n\n", "\"",
		"a@acme.com", "<bob@Acme.example>", "x@y", "acme", "ACME", "Acme deals", "acme_x", "acmex", "@", ".", " ", "\u212a", "k", "é", "\r\n"}
	inputs := exactInputs(t, rng, 20000, pieces)
	brands := []string{"acme", "Acme", "ACME", "acm", "acmes", "k\u212a", "kk"}
	for range 10000 {
		br := brands[rng.IntN(len(brands))]
		inputs = append(inputs, "From: a@b.c\nTo: "+[]string{"", "<", "Bob <"}[rng.IntN(3)]+"bob@"+br+".example>"+pieces[rng.IntN(len(pieces))]+
			"\nX: y\nSubject: "+[]string{"", "\""}[rng.IntN(2)]+brands[rng.IntN(len(brands))]+pieces[rng.IntN(len(pieces))]+"\n")
	}
	checkExact(t, `(?ism)^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b`, inputs)
}

// FuzzExact: every exact evaluation answers as regexp2 does.
func FuzzExact(f *testing.F) {
	f.Add("[ ip=192.0.2.1 rdns=mx.example helo=MX.example ident= ] [ ip=1.2.3.4 ]")
	f.Add("[ ip=10.1.2.3 rdns=3-2-1-10.example helo=x ]")
	f.Add("[ ip=300.1.2.3 rdns= helo=x by=0.1.2.3 ]")
	f.Add("\"a@b.cd\" <A@B.CD>")
	f.Add("\nTo: a@b.c\nFrom: \"a@b.c\" <z@y.example>\n")
	f.Add("[ ip=1.2.3.4 rdns= ] [ ip=1.2.3.4 rdns= helo=!172.16.0.1 by=mx ]")
	f.Add("To: bob@acme.example\nX: y\nSubject: \"ACME deals\n")
	f.Add("Mon, 1 Dec 2026 10:00:00 +1460\n")
	f.Add("1.0 (Produced by x1.0)\n")
	f.Add("\nFrom: John Smith <a@b.c>\nTo: a@b.c\nJohn Smith\n")
	f.Add("http://www.example1.EXAMPLE1.com/x@longlabel.LongLabel.")
	patterns := make([]string, 0, len(saExact))
	for p := range saExact {
		patterns = append(patterns, p)
	}
	res := make([]*regexp2.Regexp, len(patterns))
	for i, p := range patterns {
		re, err := compileBacktrack(p)
		if err != nil {
			f.Fatal(err)
		}
		re.MatchTimeout = 50 * time.Millisecond // a timed-out input is skipped
		res[i] = re
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 300 {
			return
		}
		for i, p := range patterns {
			want, err := res[i].MatchString(s)
			if err != nil {
				continue
			}
			c := &crule{exact: saExact[p], exactText: saExactText[p]}
			if got := c.matchExact(s); got != want {
				t.Fatalf("%s on %q: exact %v, regexp2 %v", p, s, got, want)
			}
		}
	})
}

// TestExactPatternsInUse: every exact evaluation and pre-check stands in
// for a rule of SpamAssassin's set (a pattern that drifted from the
// importer's output would silently leave its rule on regexp2).
func TestExactPatternsInUse(t *testing.T) {
	t.Parallel()
	saFiles(t)
	s := mustBuild(t, Config{Default: true, SpamAssassin: "/usr/share/spamassassin"})
	used := map[string]bool{}
	for _, c := range s.rules {
		if c.bt == nil || c.exact == nil {
			continue
		}
		p := c.Regex
		if c.NoCase {
			p = "(?i)" + p
		}
		used[p] = true
	}
	for p := range saExact {
		if !used[p] {
			t.Errorf("no rule has the exact evaluation of %s", p)
		}
	}
	for p := range saPrecheck {
		if !used[p] {
			t.Errorf("no rule has the pre-check of %s", p)
		}
	}
}

func TestExactRcvdForInSubject(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(31, 32))
	pieces := []string{"\nReceived: ", "\nreceived:", "\nRECEIVED: ", "from mx by mx2", " for ", " FOR ", " for <", "<", ">", ";", "; ", "a@b.c", "A@B.C",
		"\nSubject: ", "Subject: ", "subject: ", "\n", "\n\n", " ", "\t", "\u212a", "k", "x", "é", "0", strings.Repeat("y", 190), strings.Repeat("z", 210)}
	inputs := exactInputs(t, rng, 10000, pieces)
	addrs := []string{"a@b.c", "A@B.c", "a@b.cd", "z@b.c", "<a@b.c", "a;b", "\u212a@b.c", "k@b.c", "x", "é@b.c"}
	for range 20000 {
		a := addrs[rng.IntN(len(addrs))]
		var b strings.Builder
		b.WriteString("\nReceived: from a (b [192.0.2.1]) by mx" + strings.Repeat("w", []int{0, 10, 150, 185, 190}[rng.IntN(5)]))
		b.WriteString([]string{" for ", " for <", "for ", " FOR <"}[rng.IntN(4)] + a + []string{">;", ";", "> ;", ">", ";\n"}[rng.IntN(5)])
		b.WriteString([]string{" Wed, 2 Dec 2026", "", "x"}[rng.IntN(3)])
		for range rng.IntN(4) {
			b.WriteString([]string{"\n\tid 1", "\nX-Y: z", "\n\n", "\nSubject"}[rng.IntN(4)])
		}
		b.WriteString([]string{"\nSubject: ", "\nsubject: ", "Subject: ", "\nSubject:"}[rng.IntN(4)])
		b.WriteString(strings.Repeat("q", []int{0, 5, 99, 100, 101}[rng.IntN(5)]))
		b.WriteString(addrs[rng.IntN(len(addrs))] + []string{" ", "x", "0", "\n", "", ">", "\u212a", "é"}[rng.IntN(8)])
		x := []byte(b.String())
		for range rng.IntN(3) {
			if len(x) > 0 {
				x[rng.IntN(len(x))] = "\n <>;aA@"[rng.IntN(8)]
			}
		}
		inputs = append(inputs, string(x))
	}
	checkExact(t, `(?ism)\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]`, inputs)
}

func TestExactRcvdIllegalIP(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	octets := []string{"0", "00", "1", "10", "192", "198", "203", "224", "229", "230", "255", "256", "259", "260", "300", "999", "1000", "0255", "2", "51", "100", "113", "\u0663", "12a"}
	pieces := []string{" by=", " ip=", " BY=", "by=", " ip =", ".", ".", " ", "]", "[", "x", "rdns=", "\n"}
	var inputs []string
	for range 40000 {
		var b strings.Builder
		b.WriteString("[ ip=")
		if rng.IntN(3) == 0 {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		for k := range 4 {
			if k > 0 {
				b.WriteString([]string{".", ".", ".", "", ","}[rng.IntN(5)])
			}
			b.WriteString(octets[rng.IntN(len(octets))])
		}
		b.WriteString([]string{" ", " ", "", ".", "]"}[rng.IntN(5)])
		for range rng.IntN(4) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			if rng.IntN(2) == 0 {
				b.WriteString(octets[rng.IntN(len(octets))])
			}
		}
		inputs = append(inputs, b.String())
	}
	checkExact(t, ` (?:by|ip)=(?=\d+\.\d+\.\d+\.\d+ )(?:(?:0|2(?:2[4-9]|[3-5]\d)|192\.0\.2|198\.51\.100|203\.0\.113)\.|(?:\d+\.){0,3}(?!(?:2(?:[0-4]\d|5[0-5])|[01]?\d\d?)\b))`, inputs)
}

func TestExactNameEqEmail(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(35, 36))
	addrs := []string{"a@b.cd", "A@B.CD", "a.b+c@d-e.fg", "a@b.c", "a@b", "@b.cd", "a@@b.cd", "a@.cd", "a@b.c-d", "a@b.c_d", "x", "\u212a@b.cd", "k@b.cd", "\u0130@i.cd", "i@i.cd", "é@b.cd", "a@b.cd.ef"}
	var inputs []string
	for range 40000 {
		var b strings.Builder
		b.WriteString([]string{"", "\"", "Name ", "'", "x"}[rng.IntN(5)])
		b.WriteString(addrs[rng.IntN(len(addrs))])
		b.WriteString([]string{"", "\"", "\" ", " ", "`", "\t", "x", "\u00a0"}[rng.IntN(8)])
		b.WriteString([]string{"<", "< ", "<<", " <", ""}[rng.IntN(5)])
		b.WriteString(addrs[rng.IntN(len(addrs))])
		b.WriteString([]string{">", "", " >", ">>", ">x"}[rng.IntN(5)])
		if rng.IntN(4) == 0 {
			b.WriteString(", " + addrs[rng.IntN(len(addrs))] + " <" + addrs[rng.IntN(len(addrs))] + ">")
		}
		inputs = append(inputs, b.String())
	}
	checkExact(t, "(?i)([\\w+.-]+\\@[\\w.-]+\\.\\w\\w+)[\"'`\\s]*<\\s*\\1>", inputs)
}

func TestExactToEqFromName(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	addrs := []string{"a@b.c", "A@B.C", "bob@x.example", "\"a@b.c\"", "k@b.c", "\u212a@b.c", "x", "a", "a@b.cd"}
	froms := []string{"From: ", "From:", "From:\n", "from: \"", "FROM: <", "From: '", "From: \"\n "}
	mids := []string{"", "\" <", " <", "\"", " ", ">", "<", "' <", "\u00a0<", " x <"}
	tails := []string{"z@y.example>\n", "a@b.c>\n", "Name\n", "\"\n", ">\n", "\n", "q\"x\n", "x>y\n", "a@b.cx\n", ""}
	var inputs []string
	for range 40000 {
		var b strings.Builder
		b.WriteString("\nTo: " + []string{"", "<", "Bob <", "\"B\" <"}[rng.IntN(4)] + addrs[rng.IntN(len(addrs))] + []string{">", "", " x"}[rng.IntN(3)] + "\n")
		for range rng.IntN(3) {
			b.WriteString([]string{"X-Y: z\n", "\n", strings.Repeat("l", 101) + "\n", "Subject: hi\n"}[rng.IntN(4)])
		}
		b.WriteString(froms[rng.IntN(len(froms))] + addrs[rng.IntN(len(addrs))] + mids[rng.IntN(len(mids))] + tails[rng.IntN(len(tails))])
		x := []byte(b.String())
		for range rng.IntN(3) {
			if len(x) > 0 {
				x[rng.IntN(len(x))] = "\n <>\"aA@"[rng.IntN(8)]
			}
		}
		inputs = append(inputs, string(x))
	}
	checkExact(t, `(?ism)\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From:\W+(\1)([^\n\w<]+<)?((?!\1)[^\n">]+)>?\n`, inputs)
}

func TestExactForgedRelayMUA(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	ips := []string{"192.0.2.1", "127.0.0.1", "1.2.3.4", "1.2.3.45", "12.0.0.1"}
	helos := []string{"!10.0.0.1", "!127.0.0.1", "!169.254.1.1", "!172.16.0.1", "!172.15.0.1", "!172.31.9.9", "!172.32.0.1", "!172.2x.0.1", "!192.168.1.1", "!192.0.2.1", " ", "mx", "!", "!1.2", ""}
	var inputs []string
	for range 40000 {
		a, b := ips[rng.IntN(len(ips))], ips[rng.IntN(len(ips))]
		var s strings.Builder
		s.WriteString([]string{"[ ip=", "[ ip=", "[ip=", " [ ip="}[rng.IntN(4)] + a + []string{" rdns=mx helo=x ", " ", "x ", ""}[rng.IntN(4)] + "] ")
		if rng.IntN(4) == 0 {
			s.WriteString("[ ip=9.9.9.9 ] ")
		}
		s.WriteString("[ ip=" + b + []string{" rdns=", " ", ""}[rng.IntN(3)] + []string{"", "mua", "x"}[rng.IntN(3)])
		s.WriteString([]string{" helo=", " helo=", "helo=", " helo=x helo="}[rng.IntN(4)] + helos[rng.IntN(len(helos))])
		s.WriteString([]string{" by=mx ]", "", "]", " [", "\n", " ident= ] [ ip=1.1.1.1 ]"}[rng.IntN(6)])
		inputs = append(inputs, s.String())
	}
	checkExact(t, `^\[ ip=(?!127)([\d.]+) [^\[]*\[ ip=\1 [^\[]+ helo=(!(?!(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168)\.)| )[^\[]+$`, inputs)
}

func TestExactURILongRepeat(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(41, 42))
	labels := []string{"example", "EXAMPLE", "Example", "exampl", "examples", "mail", "longlabel", "LongLabel", "a_b_c_d", "1234567",
		"\u212aelvins", "kelvins", "\u0130stanbul", "istanbul", "é", "x", ""}
	seps := []string{"://", "@", ".", ".", ".", "/", ":", "//", "?", "-", " ", "@@", ":/"}
	var inputs []string
	for range 40000 {
		var b strings.Builder
		b.WriteString([]string{"http", "https", "mailto:u", "", "ftp"}[rng.IntN(5)])
		for range rng.IntN(10) {
			if rng.IntN(2) == 0 {
				b.WriteString(labels[rng.IntN(len(labels))])
			} else {
				b.WriteString(seps[rng.IntN(len(seps))])
			}
		}
		if rng.IntN(3) == 0 {
			l := labels[rng.IntN(len(labels))]
			b.WriteString([]string{"://", "@", "://a."}[rng.IntN(3)] + l + "." + strings.ToUpper(l) + ".")
		}
		inputs = append(inputs, b.String())
	}
	checkExact(t, `(?i)(?:://|@)(?:\w+\.)*(\w{7,}\.)\1`, inputs)
}
