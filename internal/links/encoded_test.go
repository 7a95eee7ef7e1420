package links

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestDecodeUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"Hi Mom -+Jjo--!":                       "Hi Mom -\u263a-!", // RFC 2152 examples
		"+ZeVnLIqe-":                            "\u65e5\u672c\u8a9e",
		"A+ImIDkQ.":                             "A\u2262\u0391.",
		"1 +- 1":                                "1 + 1",
		"+ADw-a href+AD0AIg-http://x.test+ACI-": `<a href="http://x.test"`,
		"plain text, no plus":                   "plain text, no plus",
		"a + b":                                 "a + b",
		"+A":                                    "+A", // too short to hold a code unit: kept
		"+":                                     "+",
	} {
		if got := decodeUTF7(in); got != want {
			t.Errorf("decodeUTF7(%q) = %q, want %q", in, got, want)
		}
	}
}

// utf7All writes all of s as one UTF-7 base64 run: no byte of the link
// is left readable as ASCII.
func utf7All(s string) string {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return "+" + base64.RawStdEncoding.EncodeToString(b) + "-"
}

func utf16le(s string, bom bool) string {
	var b []byte
	if bom {
		b = append(b, 0xff, 0xfe)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return string(b)
}

func utf16be(s string) string {
	b := []byte{0xfe, 0xff}
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return string(b)
}

// Links hidden in UTF-7 and UTF-16 text are found, declared or not.
func TestFromMessageEncoded(t *testing.T) {
	utf7 := utf7All(`<a href="http://evil-utf7.example/login">your bank</a>`)
	if strings.Contains(utf7, "evil") || strings.Contains(utf7, "http") {
		t.Fatal("the UTF-7 test text is readable as ASCII")
	}
	html := `<a href="http://evil-utf16.example/x">bank</a>`
	cases := []struct {
		name, header, body, want string
	}{
		{"utf-7 declared", "Content-Type: text/html; charset=utf-7", utf7, "evil-utf7.example"},
		{"utf-7 alias", "Content-Type: text/html; charset=unicode-1-1-utf-7", utf7, "evil-utf7.example"},
		{"utf-7 undeclared", "Content-Type: text/html; charset=us-ascii", utf7, "evil-utf7.example"},
		{"utf-7 all letters undeclared", "Content-Type: text/plain; charset=iso-8859-1", "see " + utf7All("http://letters-utf7.example/") + " now", "letters-utf7.example"},
		{"utf-7 meta", "Content-Type: text/html", `<meta charset="utf-7">` + utf7All("http://meta-utf7.example/"), "meta-utf7.example"},
		{"utf-7 in text/plain", "Content-Type: text/plain; charset=utf-7", utf7, "evil-utf7.example"},
		{"utf-7 base64 transfer", "Content-Type: text/html; charset=utf-7\r\nContent-Transfer-Encoding: base64",
			base64.StdEncoding.EncodeToString([]byte(utf7)), "evil-utf7.example"},
		{"utf-16le bom", "Content-Type: text/html\r\nContent-Transfer-Encoding: binary", utf16le(html, true), "evil-utf16.example"},
		{"utf-16le no bom", "Content-Type: text/html\r\nContent-Transfer-Encoding: binary", utf16le(html, false), "evil-utf16.example"},
		{"utf-16be bom", "Content-Type: text/html\r\nContent-Transfer-Encoding: binary", utf16be(html), "evil-utf16.example"},
	}
	for _, tc := range cases {
		raw := "From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n" + tc.header + "\r\n\r\n" + tc.body + "\r\n"
		m := filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{})
		var hosts []string
		for _, l := range FromMessage(m, 0) {
			hosts = append(hosts, l.Domain)
		}
		found := false
		for _, h := range hosts {
			found = found || h == tc.want
		}
		if !found {
			t.Errorf("%s: links %v, want %s", tc.name, hosts, tc.want)
		}
	}
	// Ordinary mail gains nothing from the other readings.
	plain := filter.NewMessageBytes(filter.Envelope{}, []byte("Content-Type: text/plain\r\n\r\nC++ and a+b, see http://ok.example/\r\n"), filter.Limits{})
	if ls := FromMessage(plain, 0); len(ls) != 1 || ls[0].Domain != "ok.example" {
		t.Errorf("plain: %v", ls)
	}
}

func FuzzDecodeUTF7(f *testing.F) {
	for _, s := range []string{"Hi Mom -+Jjo--!", "+ADw-a href+AD0AIg-http://x+ACI-", "+-+", "+2D3cAA-", "+AAAAAAAAAAAAAAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := decodeUTF7(s)
		if !strings.Contains(s, "+") && d != s {
			t.Fatalf("text without + changed: %q → %q", s, d)
		}
		if utf8.ValidString(s) && !utf8.ValidString(d) {
			t.Fatalf("valid UTF-8 decoded to invalid: %q → %q", s, d)
		}
		if len(d) > 2*len(s)+4 {
			t.Fatalf("decoded %d bytes from %d", len(d), len(s))
		}
		u, _ := decodeUTF16([]byte(s))
		if !utf8.ValidString(u) || len(u) > 2*len(s) {
			t.Fatalf("decodeUTF16(%q) = %q", s, u)
		}
	})
}
