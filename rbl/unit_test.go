package rbl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/portcullis-mail/portcullis/filter"
)

func TestQueryNames(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.1", "1.2.0.192.bl.test."},
		{"::ffff:192.0.2.1", "1.2.0.192.bl.test."},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test."},
	}
	for _, tc := range tests {
		if got := ipQuery(netip.MustParseAddr(tc.ip), "bl.test"); got != tc.want {
			t.Errorf("ipQuery(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"Example.COM.", "example.com.dbl.test."},
		{"bücher.example", "xn--bcher-kva.example.dbl.test."},
	} {
		got, err := domainQuery(tc.in, "dbl.test")
		if err != nil || got != tc.want {
			t.Errorf("domainQuery(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "a..b", "a b.example", strings.Repeat("a", 64) + ".example", strings.Repeat("abcdefgh.", 28) + "example"} {
		if _, err := domainQuery(bad, "dbl.test"); !errors.Is(err, ErrConfig) {
			t.Errorf("domainQuery(%q) error = %v, want ErrConfig", bad, err)
		}
	}
}

func TestCodes(t *testing.T) {
	l := List{Name: "zen", Zone: "bl.test", Score: 1, Codes: []Code{
		{Match: "127.0.0.2", Name: "sbl", Score: 4},
		{Match: "127.0.0.4/30", Name: "xbl", Score: 3},
		{Match: "127.0.0.3/0.0.0.255", Name: "three", Score: 2},
		{Match: "&0x08", Name: "ph", Score: 5},
	}}
	if err := l.prepare(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		answers []string
		want    string
	}{
		{[]string{"127.0.0.2"}, "RBL_ZEN_SBL:4"},
		{[]string{"127.0.0.5"}, "RBL_ZEN_XBL:3"},
		{[]string{"127.0.0.7"}, "RBL_ZEN_XBL:3"},
		{[]string{"127.0.9.3"}, "RBL_ZEN_THREE:2"},
		{[]string{"127.0.0.8"}, "RBL_ZEN_PH:5"},
		{[]string{"127.0.0.12"}, "RBL_ZEN_PH:5"},
		{[]string{"127.0.0.8", "127.0.0.4"}, "RBL_ZEN_PH:5 RBL_ZEN_XBL:3"},
		{[]string{"127.0.0.99"}, ""}, // undefined: classify makes it unknown
		{[]string{"127.0.0.99", "127.0.0.2"}, "RBL_ZEN_SBL:4"},
		{[]string{"127.0.0.2", "127.0.0.2"}, "RBL_ZEN_SBL:4"},
		{[]string{"127.0.0.2", "127.0.0.6"}, "RBL_ZEN_SBL:4 RBL_ZEN_XBL:3"},
	}
	for _, tc := range tests {
		var as []netip.Addr
		for _, a := range tc.answers {
			as = append(as, netip.MustParseAddr(a))
		}
		var got []string
		for _, s := range l.symbols(as) {
			got = append(got, fmt.Sprintf("%s:%g", s.Name, s.Score))
		}
		slices.Sort(got)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%v → %v, want %s", tc.answers, got, tc.want)
		}
	}
	// A code the list does not define is unknown for that list, not a
	// listing (zen's 127.0.0.128); a defined one beside it still lists.
	for _, tc := range []struct {
		answers []string
		want    error
	}{
		{[]string{"127.0.0.128"}, ErrUndefinedCode},
		{[]string{"127.0.0.99", "127.0.0.100"}, ErrUndefinedCode},
		{[]string{"127.0.0.128", "127.0.0.2"}, nil},
		{[]string{"127.0.1.8"}, nil}, // the bitmask defines it
	} {
		var as []netip.Addr
		for _, a := range tc.answers {
			as = append(as, netip.MustParseAddr(a))
		}
		if err := l.classify(as); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("classify(%v) = %v, want %v", tc.answers, err, tc.want)
		}
	}
	zen := SpamhausZEN()
	if err := zen.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := zen.classify([]netip.Addr{netip.MustParseAddr("127.0.0.128")}); !errors.Is(err, ErrUndefinedCode) {
		t.Errorf("zen 127.0.0.128: %v, want ErrUndefinedCode", err)
	}
	for _, bad := range []string{"", "&0", "&x", "127.0.0.1/33", "127.0.0.1/1.2.3", "::1", "127.0.0.1/::1"} {
		if _, err := parseMatch(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("parseMatch(%q) = %v, want ErrConfig", bad, err)
		}
	}
}

func TestClassify(t *testing.T) {
	l := List{Zone: "bl.test"}
	if err := l.prepare(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    string
		want error
	}{
		{"127.0.0.2", nil},
		{"127.255.255.252", ErrQueryRefused},
		{"127.255.255.254", ErrQueryRefused},
		{"127.255.255.255", ErrQueryRefused},
		{"127.255.255.253", nil},
		{"198.51.100.7", ErrBadAnswer},
		{"0.0.0.0", ErrBadAnswer},
	} {
		err := l.classify([]netip.Addr{netip.MustParseAddr(tc.a)})
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("classify(%s) = %v, want %v", tc.a, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	ok := List{Zone: "bl.test"}
	for name, cfg := range map[string]Config{
		"no resolvers":  {Lists: []List{ok}},
		"no lists":      {Resolvers: []string{"127.0.0.1:53"}},
		"no zone":       {Resolvers: []string{"127.0.0.1"}, Lists: []List{{Name: "x"}}},
		"bad zone":      {Resolvers: []string{"127.0.0.1"}, Lists: []List{{Zone: "a b"}}},
		"dup names":     {Resolvers: []string{"127.0.0.1"}, Lists: []List{ok, ok}},
		"bad code":      {Resolvers: []string{"127.0.0.1"}, Lists: []List{{Zone: "bl.test", Codes: []Code{{Match: "x"}}}}},
		"ip target dom": {Resolvers: []string{"127.0.0.1"}, Lists: []List{{Zone: "bl.test", Kind: DomainList, Targets: ClientIP}}},
		"dom target ip": {Resolvers: []string{"127.0.0.1"}, Lists: []List{{Zone: "bl.test", Targets: LinkDomains}}},
		"ttl clamps":    {Resolvers: []string{"127.0.0.1"}, Lists: []List{ok}, MinTTL: 10e9, MaxTTL: 1e9},
		"bad refused":   {Resolvers: []string{"127.0.0.1"}, Lists: []List{{Zone: "bl.test", Refused: []netip.Addr{netip.MustParseAddr("::1")}}}},
	} {
		if _, err := NewChecker(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

func TestPresets(t *testing.T) {
	for name, p := range Presets() {
		c, err := NewChecker(Config{Resolvers: []string{"127.0.0.1:1"}, Lists: []List{p()}, HealthInterval: -1})
		if err != nil {
			t.Errorf("preset %s: %v", name, err)
			continue
		}
		c.Close()
	}
	dnswl := DNSWL()
	if err := dnswl.prepare(); err != nil {
		t.Fatal(err)
	}
	syms := dnswl.symbols([]netip.Addr{netip.MustParseAddr("127.0.15.3")})
	if len(syms) != 1 || syms[0].Name != "RCVD_IN_DNSWL_HI" || syms[0].Score >= 0 {
		t.Fatalf("DNSWL 127.0.15.3 → %v", syms)
	}
	if err := dnswl.classify([]netip.Addr{netip.MustParseAddr("127.0.0.255")}); !errors.Is(err, ErrQueryRefused) {
		t.Fatalf("DNSWL refused code: %v", err)
	}
	uribl := URIBL()
	if err := uribl.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := uribl.classify([]netip.Addr{netip.MustParseAddr("127.0.0.1")}); !errors.Is(err, ErrQueryRefused) {
		t.Fatalf("URIBL 127.0.0.1: %v", err)
	}
}

func TestReceivedFrom(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"from mx.example.com (mx.example.com [192.0.2.1]) by us.example (Postfix) with ESMTPS id X", "192.0.2.1"},
		{"from x ([IPv6:2001:db8::5]) by y", "2001:db8::5"},
		{"from x (helo [not-an-ip] [203.0.113.9]) by y", "203.0.113.9"},
		{"from x by y ([192.0.2.77])", ""},
		{"from [", ""},
	} {
		ip, ok := receivedFrom(tc.in)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("receivedFrom(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("2.0.0.127.bl.test.", dns.TypeA)
	m.Rcode = dns.RcodeNameError
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "bl.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 50}, Minttl: 900}}
	a, err := parseA(m)
	if err != nil || !a.nx || !a.hasTTL || a.ttl.Seconds() != 50 {
		t.Fatalf("negative answer: %+v", a)
	}
	txt := new(dns.Msg)
	txt.Answer = []dns.RR{&dns.TXT{Txt: []string{strings.Repeat("x", 600)}}}
	if r := parseTXT(txt); len(r) != maxReason {
		t.Fatalf("reason not bounded: %d", len(r))
	}
}

var _ filter.Metrics = (*memMetrics)(nil)

func TestParseList(t *testing.T) {
	l, err := ParseList(IPList, "bl.example.org=4.5")
	if err != nil || l.Zone != "bl.example.org" || l.Score != 4.5 || l.Kind != IPList {
		t.Fatalf("%+v %v", l, err)
	}
	l, err = ParseList(DomainList, "Uri.Example.")
	if err != nil || l.Zone != "uri.example" || l.Score != DefaultScore || l.Kind != DomainList {
		t.Fatalf("%+v %v", l, err)
	}
	if l, err = ParseList(IPList, "zen"); err != nil || l.Zone != "zen.spamhaus.org" {
		t.Fatalf("preset: %+v %v", l, err)
	}
	for _, bad := range []struct {
		kind Kind
		spec string
	}{{DomainList, "zen"}, {IPList, "dbl"}, {IPList, "bl.example=x"}, {IPList, ""}, {IPList, "a b=1"}} {
		if _, err := ParseList(bad.kind, bad.spec); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseList(%s, %q) = %v", bad.kind, bad.spec, err)
		}
	}
}

func TestHealthJSON(t *testing.T) {
	c, err := NewChecker(Config{Resolvers: []string{"127.0.0.1:1", "127.0.0.2"}, Lists: []List{{Zone: "bl.test"}}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := json.Marshal(c.Health())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"addr":"127.0.0.1:1"`, `"addr":"127.0.0.2:53"`, `"zone":"bl.test"`, `"up":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("health JSON lacks %s: %s", want, b)
		}
	}
}
