package zone

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

const sample = `# test zone
$TTL 300
:127.0.0.2:listed: see http://example.test/$
192.0.2.1
198.51.100.0/24 :127.0.0.4:a spam source
203.0.113.5-203.0.113.9
10.1
!198.51.100.7
:3:default three
192.0.2.200 hand-made text
`

func TestLookup(t *testing.T) {
	s, err := ReadBytes([]byte(sample), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip, a, txt string
	}{
		{"192.0.2.1", "127.0.0.2", "listed: see http://example.test/192.0.2.1"},
		{"192.0.2.2", "", ""},
		{"198.51.100.9", "127.0.0.4", "a spam source"},
		{"198.51.100.7", "", ""}, // excluded
		{"203.0.113.4", "", ""},
		{"203.0.113.5", "127.0.0.2", "listed: see http://example.test/203.0.113.5"},
		{"203.0.113.9", "127.0.0.2", "listed: see http://example.test/203.0.113.9"},
		{"203.0.113.10", "", ""},
		{"10.1.255.3", "127.0.0.2", "listed: see http://example.test/10.1.255.3"},
		{"10.2.0.1", "", ""},
		{"192.0.2.200", "127.0.0.3", "hand-made text"},
		{"::ffff:192.0.2.1", "127.0.0.2", "listed: see http://example.test/192.0.2.1"},
		{"2001:db8::1", "", ""},
	} {
		a, ok := s.Lookup(netip.MustParseAddr(tc.ip))
		if ok != (tc.a != "") || (ok && (a.A.String() != tc.a || a.TXT != tc.txt)) {
			t.Errorf("%s: %v %+v, want %q %q", tc.ip, ok, a, tc.a, tc.txt)
		}
	}
	if s.Len() != 6 {
		t.Errorf("Len %d, want 6", s.Len())
	}
}

// A default line with no A value (":: text") changes only the TXT; the
// A stays the default before it. Found by FuzzRead.
func TestDefaultWithoutA(t *testing.T) {
	s, err := ReadBytes([]byte(":127.0.0.5:five\n::only text\n0/0\n"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a, ok := s.Lookup(netip.MustParseAddr("0.0.0.0"))
	if !ok || a.A.String() != "127.0.0.5" || a.TXT != "only text" {
		t.Errorf("got %v %+v, want 127.0.0.5 %q", ok, a, "only text")
	}
}

func TestErrorsAndLimits(t *testing.T) {
	for _, z := range []string{"192.0.2.300\n", "1.2.3.4/33\n", "1.2.3.9-1.2.3.1\n", "1.2.3.4.5\n", "01.2.3.4\n", ":notanip:x\n", "a.b.c.d\n"} {
		if _, err := ReadBytes([]byte("1.1.1.1\n"+z), Limits{}); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v", z, err)
		}
	}
	var b strings.Builder
	for i := range 11 {
		fmt.Fprintf(&b, "192.0.2.%d\n", i)
	}
	if _, err := ReadBytes([]byte(b.String()), Limits{MaxEntries: 10}); !errors.Is(err, ErrLimit) {
		t.Errorf("11 entries over a limit of 10: %v", err)
	}
	if _, err := ReadBytes([]byte("1.1.1.1 "+strings.Repeat("x", 5000)+"\n"), Limits{}); !errors.Is(err, ErrLimit) {
		t.Errorf("a 5,000-byte line: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("0/0\n!1.2.3.4\n0.0.0.0-255.255.255.255 :2:x\n"))
	f.Add([]byte("::x\n0/0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadBytes(data, Limits{MaxEntries: 1000})
		if err != nil {
			return
		}
		for _, ip := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "127.0.0.2"} {
			if a, ok := s.Lookup(netip.MustParseAddr(ip)); ok && !a.A.Is4() {
				t.Fatalf("%s listed with a non-IPv4 answer %v", ip, a.A)
			}
		}
	})
}
