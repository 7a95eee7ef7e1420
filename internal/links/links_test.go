package links

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name string
		text string
		html bool
		want []string // URL|Host|Domain|IP
	}{
		{"plain", "see http://Example.COM/Path?q=1 now", false,
			[]string{"http://example.com/Path?q=1|example.com|example.com|"}},
		{"https and subdomain", "go https://mail.google.co.uk/x.", false,
			[]string{"https://mail.google.co.uk/x|mail.google.co.uk|google.co.uk|"}},
		{"bare www", "visit www.Evil-Site.com today", false,
			[]string{"http://www.evil-site.com|www.evil-site.com|evil-site.com|"}},
		{"trailing dot host", "see http://example.com.", false,
			[]string{"http://example.com|example.com|example.com|"}},
		{"fqdn trailing dot", "http://example.com./a", false,
			[]string{"http://example.com/a|example.com|example.com|"}},
		{"parenthesis", "(http://example.org/a)", false,
			[]string{"http://example.org/a|example.org|example.org|"}},
		{"mixed case scheme", "HtTpS://WWW.EXAMPLE.NET", false,
			[]string{"https://www.example.net|www.example.net|example.net|"}},
		{"userinfo and port", "http://user:pw@bank.example.com:8080/login", false,
			[]string{"http://bank.example.com:8080/login|bank.example.com|example.com|"}},
		{"backslashes", `http:\\evil.example.com\x`, false,
			[]string{"http://evil.example.com/x|evil.example.com|example.com|"}},
		{"idn", "http://bücher.example/", false,
			[]string{"http://xn--bcher-kva.example/|xn--bcher-kva.example|xn--bcher-kva.example|"}},
		{"idn fullwidth dots", "http://ｅｘａｍｐｌｅ。com/", false,
			[]string{"http://example.com/|example.com|example.com|"}},
		{"decimal ip", "http://3232235777/", false,
			[]string{"http://192.168.1.1/|192.168.1.1||192.168.1.1"}},
		{"hex ip", "http://0xC0.0xA8.1.1/", false,
			[]string{"http://192.168.1.1/|192.168.1.1||192.168.1.1"}},
		{"octal ip", "http://0300.0250.01.01/", false,
			[]string{"http://192.168.1.1/|192.168.1.1||192.168.1.1"}},
		{"two part ip", "http://127.1/", false,
			[]string{"http://127.0.0.1/|127.0.0.1||127.0.0.1"}},
		{"ipv6", "http://[2001:DB8::1]:80/x", false,
			[]string{"http://[2001:db8::1]:80/x|2001:db8::1||2001:db8::1"}},
		{"ipv4 mapped ipv6", "http://[::ffff:192.0.2.1]/", false,
			[]string{"http://192.0.2.1/|192.0.2.1||192.0.2.1"}},
		{"invalid ip dropped", "http://1.2.3.999/ and http://ok.example.com", false,
			[]string{"http://ok.example.com|ok.example.com|example.com|"}},
		{"percent host", "http://%65xample.com/", false,
			[]string{"http://example.com/|example.com|example.com|"}},
		{"dedup", "http://a.example.com/ http://A.EXAMPLE.com/ http://a.example.com./", false,
			[]string{"http://a.example.com/|a.example.com|example.com|"}},
		{"www inside word ignored", "awww.example.com", false, nil},
		{"not a url", "invoice.pdf and a.b", false, nil},
		{"empty host", "http:// nothing", false, nil},
		{"href entities", `<a href="http://exa&#109;ple&#x2e;com/a?x=1&amp;y=2">x</a>`, true,
			[]string{"http://example.com/a?x=1&y=2|example.com|example.com|"}},
		{"href scheme relative", `<a href="//cdn.example.org/i.png">`, true,
			[]string{"http://cdn.example.org/i.png|cdn.example.org|example.org|"}},
		{"href with whitespace", "<a href=\" ht\ntp://split.example.com/ \">", true,
			[]string{"http://split.example.com/|split.example.com|example.com|"}},
		{"src unquoted", `<img SRC=https://img.example.com/x.gif>`, true,
			[]string{"https://img.example.com/x.gif|img.example.com|example.com|"}},
		{"html text url", `<p>Go to&nbsp;www.example.com</p>`, true,
			[]string{"http://www.example.com|www.example.com|example.com|"}},
		{"relative href ignored", `<a href="/local">`, true, nil},
		{"entities literal in text mode", "http://exa&#109;ple.com", false,
			[]string{"http://exa|exa||"}},
		{"public suffix host", "http://co.uk/", false,
			[]string{"http://co.uk/|co.uk||"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Extract(tc.text, tc.html, 0)
			var s []string
			for _, l := range got {
				ip := ""
				if l.IP.IsValid() {
					ip = l.IP.String()
				}
				s = append(s, fmt.Sprintf("%s|%s|%s|%s", l.URL, l.Host, l.Domain, ip))
			}
			if strings.Join(s, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Extract(%q):\n got %q\nwant %q", tc.text, s, tc.want)
			}
		})
	}
}

func TestExtractCap(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "http://h%d.example.com/ ", i)
	}
	if got := Extract(b.String(), false, 7); len(got) != 7 {
		t.Fatalf("cap 7: got %d links", len(got))
	}
	if got := Extract(b.String(), false, -1); len(got) != 50 {
		t.Fatalf("no cap: got %d links", len(got))
	}
	b.Reset()
	for i := range DefaultMax + 10 {
		fmt.Fprintf(&b, "http://h%d.example.com/ ", i)
	}
	if got := Extract(b.String(), false, 0); len(got) != DefaultMax {
		t.Fatalf("default cap: got %d links, want %d", len(got), DefaultMax)
	}
}

func TestFromMessage(t *testing.T) {
	raw := "From: a@example.com\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhttp://plain.example.com/ and www.both.example.net\r\n" +
		"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<a href=3D\"http://html.example.org/&amp;\">x</a> http://www.both.example.net\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\n\r\nhttp://attachment.example.com/\r\n" +
		"--b--\r\n"
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{})
	got := FromMessage(m, 0)
	var hosts []string
	for _, l := range got {
		hosts = append(hosts, l.Host)
	}
	want := "plain.example.com www.both.example.net html.example.org"
	if strings.Join(hosts, " ") != want {
		t.Fatalf("hosts = %q, want %q", hosts, want)
	}
	if got := FromMessage(m, 2); len(got) != 2 {
		t.Fatalf("cap 2: got %d", len(got))
	}
	// The rules and the URI lists ask in turn: one extraction, shared.
	if again := FromMessage(m, DefaultMax); &again[0] != &got[0] {
		t.Error("a second call for the same message extracted the links again")
	}
	if got := FromMessage(m, 2); len(got) != 2 {
		t.Fatalf("cap 2 after the others: got %d", len(got))
	}
}

func FuzzLinks(f *testing.F) {
	for _, s := range []string{
		"http://example.com/", "www.example.com", `<a href="//x.example">`,
		"http://3232235777/", "http://0x7f.1/", "http://[::1]/", "http://bücher.example/",
		"http://exa&#109;ple.com", "HTTP://A.B.C.", "http:\\\\a\\b", "http://%zz/",
		"http://a@b@c:99999/", "<img src=http://xn--/>", "http://[::ffff:1.2.3.4]:1/",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, text string, html bool) {
		got := Extract(text, html, 20)
		if len(got) > 20 {
			t.Fatalf("cap exceeded: %d", len(got))
		}
		seen := map[string]bool{}
		for _, l := range got {
			if seen[l.URL] {
				t.Fatalf("duplicate %q", l.URL)
			}
			seen[l.URL] = true
			if l.Host == "" || !utf8.ValidString(l.URL) {
				t.Fatalf("bad link %+v", l)
			}
			if l.Host != strings.ToLower(l.Host) || strings.HasSuffix(l.Host, ".") {
				t.Fatalf("host not normalised: %q", l.Host)
			}
			if l.IP.IsValid() {
				if l.Domain != "" || l.IP.String() != l.Host || l.IP.Is4In6() {
					t.Fatalf("ip link %+v", l)
				}
				continue
			}
			for i := 0; i < len(l.Host); i++ {
				if l.Host[i] >= utf8.RuneSelf {
					t.Fatalf("host not ASCII: %q", l.Host)
				}
			}
			if l.Domain != "" && !strings.HasSuffix(l.Host, l.Domain) {
				t.Fatalf("domain %q not a suffix of %q", l.Domain, l.Host)
			}
			// A normalised host parses back to itself.
			if again, ok := normalise(l.Host); !ok || again.Host != l.Host {
				t.Fatalf("host %q not stable: %+v %v", l.Host, again, ok)
			}
		}
	})
}

func TestExtractLongHost(t *testing.T) {
	long := "http://" + strings.Repeat("a.", 600) + "example.com/ http://ok.example.com/"
	got := Extract(long, false, 0)
	if len(got) != 1 || got[0].Host != "ok.example.com" {
		t.Fatalf("got %+v", got)
	}
}

// hasPrefixFold must say what strings.EqualFold says over the prefix's
// length, for any input, including multi-byte runes that fold to ASCII
// (ſ, K).
func TestHasPrefixFoldAgreesWithEqualFold(t *testing.T) {
	inputs := []string{"", "h", "HREF", "hReF=x", "ſrc", "\u212aey", "https:", "HTTPS://", "http\xff", "www.", "WwW.x", "src", "utf-7", "UTF7"}
	for _, s := range inputs {
		for _, p := range []string{"href", "src", "http:", "https:", "www.", "utf-7", "utf7", "key", "charset"} {
			want := len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
			if got := hasPrefixFold(s, p); got != want {
				t.Errorf("hasPrefixFold(%q, %q) = %v, EqualFold says %v", s, p, got, want)
			}
		}
	}
}

func FuzzHasPrefixFold(f *testing.F) {
	f.Add("HREF=", "href")
	f.Add("ſrc", "src")
	f.Fuzz(func(t *testing.T, s, p string) {
		p = strings.ToLower(p)
		for i := 0; i < len(p); i++ {
			if p[i] >= 0x80 {
				return // prefixes are ASCII
			}
		}
		want := len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
		if got := hasPrefixFold(s, p); got != want {
			t.Fatalf("hasPrefixFold(%q, %q) = %v, EqualFold says %v", s, p, got, want)
		}
	})
}

// The byte-pair filters never drop a candidate: every pair that starts
// one of the names in some case passes.
func TestCandidateFilters(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			pair := string([]byte{byte(a), byte(b)})
			for _, name := range []string{"href", "src"} {
				if hasPrefixFold(pair, name[:2]) && !mayStartAttr(byte(a), byte(b)) {
					t.Errorf("mayStartAttr drops %q", pair)
				}
			}
			for _, name := range []string{"http:", "https:", "www."} {
				if hasPrefixFold(pair, name[:2]) && !mayStartBare(byte(a), byte(b)) {
					t.Errorf("mayStartBare drops %q", pair)
				}
			}
		}
	}
	if mayStartAttr('h', 'e') || mayStartBare('h', 'e') || mayStartBare('w', 'h') {
		t.Error("the filters pass pairs no name starts with")
	}
}
