package rules

import (
	"net/netip"
	"net/textproto"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"golang.org/x/net/publicsuffix"
)

func TestSLD(t *testing.T) {
	for _, d := range []string{"", ".", "..", "a", "a.", ".a", "a.b", "a.b.c", ".b.c", "a..c", "a.b.", "x.mail.example.co.uk"} {
		want := d
		if labels := strings.Split(d, "."); len(labels) > 2 && labels[0] != "" {
			want = strings.Join(labels[len(labels)-2:], ".")
		}
		if got := sld(d); got != want {
			t.Errorf("sld(%q) = %q, want %q", d, got, want)
		}
	}
}

func TestPartHeaderMissingField(t *testing.T) {
	m := filter.NewMessageBytes(filter.Envelope{}, []byte("From: a@b.example\r\nX-Odd_Name.1: v\r\nContent-Type: text/plain\r\n\r\nbody\r\n"), filter.Limits{})
	parts, err := m.Parts()
	if err != nil || len(parts) == 0 {
		t.Fatal(parts, err)
	}
	for _, c := range []struct {
		key   string
		found bool
	}{{"x-odd_name.1", true}, {"X-ODD_NAME.1", true}, {"content-type", true}, {"content-disposition", false}, {"x odd", false}, {"", false}} {
		canon := ""
		if isToken(c.key) {
			canon = textproto.CanonicalMIMEHeaderKey(c.key)
		}
		if _, found := partHeader(parts[0], strings.ToLower(c.key), canon, false); found != c.found {
			t.Errorf("partHeader(%q) found = %v, want %v", c.key, found, c.found)
		}
	}
	if n := testing.AllocsPerRun(10, func() { partHeader(parts[0], "content-disposition", "Content-Disposition", false) }); n != 0 {
		t.Errorf("a missing field costs %v allocations", n)
	}
}

func TestMayBeIP(t *testing.T) {
	for _, s := range []string{"", "1.2.3.4", "192.0.2.300", "::1", "fe80::1%eth0", "2001:db8::", "1.2.3.4%x", "example.com", "1e100.net", "10", "0x7f.1"} {
		_, err := netip.ParseAddr(s)
		if err == nil && !mayBeIP(s) {
			t.Errorf("mayBeIP(%q) = false for an address", s)
		}
	}
	psl := testing.AllocsPerRun(10, func() { _, _ = publicsuffix.EffectiveTLDPlusOne("mail.example.com") })
	if n := testing.AllocsPerRun(10, func() { registeredDomain("mail.example.com") }); n > psl {
		t.Errorf("registeredDomain of a host name allocates %v times, the suffix lookup %v", n, psl)
	}
}
