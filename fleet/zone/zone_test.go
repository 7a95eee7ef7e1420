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

// A line with no A value ("::text") is one rbldnsd ignores: an error
// here, never a silent change of meaning.
func TestDefaultWithoutA(t *testing.T) {
	for _, z := range []string{":127.0.0.5:five\n::only text\n11/8\n", "1.2.3.4 ::text\n", "1.2.3.4 :\n"} {
		if _, err := ReadBytes([]byte(z), Limits{}); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v", z, err)
		}
	}
}

// The semantics rbldnsd has (checked against it in package fleet's
// TestZoneIdentityRBLDNSD): levels of /8, /16, /24, /32; the narrowest
// level holding an address answers, an exclusion winning at its level;
// several listings of one level all answer; ":A" keeps the default TXT,
// ":A:" has none; "$$" is "$"; a TXT is cut at 254 bytes.
func TestRBLDNSDSemantics(t *testing.T) {
	z := `:127.0.0.5:five $
14.0.0.0/8
!14.1.0.0/16
14.1.2.0/24 :3:inside
1.2.3.0/22
!1.2.0.0/20
1.2.8.4 :2:first
1.2.8.4 :3:second
1.2.8.4 :2:first
1.2.8.5 :6
1.2.8.6 :6:
1.2.8.7 :2:cost $$5 for $
1.2.8.8 :2:` + strings.Repeat("x", 250) + `$
`
	s, err := ReadBytes([]byte(z), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ip, want string }{
		{"14.9.9.9", "127.0.0.5 five 14.9.9.9"},
		{"14.1.0.1", ""},
		{"14.1.2.3", "127.0.0.3 inside"},
		{"1.2.3.1", ""}, // a /22 and a /20 both make /24s: the exclusion wins
		{"1.2.8.4", "127.0.0.2 first|127.0.0.3 second"},
		{"1.2.8.5", "127.0.0.6 five 1.2.8.5"},
		{"1.2.8.6", "127.0.0.6 "},
		{"1.2.8.7", "127.0.0.2 cost $5 for 1.2.8.7"},
		{"1.2.8.8", "127.0.0.2 " + strings.Repeat("x", 250) + "1.2."},
	} {
		var got []string
		for _, a := range s.Answers(netip.MustParseAddr(tc.ip)) {
			got = append(got, a.A.String()+" "+a.TXT)
		}
		if strings.Join(got, "|") != tc.want {
			t.Errorf("%s: %q, want %q", tc.ip, got, tc.want)
		}
	}
	if _, err := ReadBytes([]byte("0.0.0.0/0\n"), Limits{}); !errors.Is(err, ErrSyntax) {
		t.Errorf("a /0: %v", err)
	}
	// A /9 is 128 /16 blocks: over a limit of 100.
	if _, err := ReadBytes([]byte("11.0.0.0/9\n"), Limits{MaxEntries: 100}); !errors.Is(err, ErrLimit) {
		t.Errorf("128 blocks over a limit of 100: %v", err)
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
	f.Add([]byte("0/8\n!1.2.3.4\n0.0.0.0-255.255.255.255 :2:x\n"))
	f.Add([]byte("1.2.3.0/22\n!1.2.0.0/20\n1.2.3.4 :3:$$ $\n1.2.3.4 :4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadBytes(data, Limits{MaxEntries: 1000})
		if err != nil {
			return
		}
		for _, ip := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "127.0.0.2"} {
			for _, a := range s.Answers(netip.MustParseAddr(ip)) {
				if !a.A.Is4() || len(a.TXT) > maxTXT {
					t.Fatalf("%s listed with an answer rbldnsd cannot give: %v %d bytes of TXT", ip, a.A, len(a.TXT))
				}
			}
		}
	})
}
