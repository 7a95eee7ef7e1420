package rbl

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// rbldnsdZones are the zones of the integration tests: an IP list made of
// two ip4set datasets (so one address can carry two codes) and an ip6trie,
// a domain list (dnset), and an allowlist, each with its RFC 5782 test
// points and TXT reasons.
var rbldnsdZones = []testsvc.RBLZone{
	{Name: "bl.test", Type: "ip4set", Data: `:127.0.0.2:Listed, see https://bl.test/lookup?$
127.0.0.2
192.0.2.1 :127.0.0.2:Spam source $
192.0.2.2 :127.0.0.4:Exploited host $
198.51.100.0/24 :127.0.0.3:Snowshoe range
192.0.2.66 :127.255.255.254:Query refused
`},
	{Name: "bl.test", Type: "ip4set", Data: `192.0.2.1 :127.0.0.10:Dynamic range
`},
	{Name: "bl.test", Type: "ip6trie", Data: `:127.0.0.2:IPv6 spam source
2001:db8:1::/48
`},
	{Name: "dbl.test", Type: "dnset", Data: `:127.0.1.2:Spam domain $
test
evil.example
.phish.example :127.0.1.4:Phishing domain
`},
	{Name: "wl.test", Type: "ip4set", Data: `:127.0.10.3:Trusted sender
127.0.0.2
203.0.113.5
`},
}

func rbldnsdLists() []List {
	return []List{
		{Name: "bl", Zone: "bl.test", Targets: ClientIP | ReceivedIPs | LinkIPs, Score: 1, FailScore: 0.5, Codes: []Code{
			{Match: "127.0.0.2", Name: "spam", Score: 4},
			{Match: "127.0.0.3", Name: "snowshoe", Score: 3},
			{Match: "127.0.0.4/30", Name: "exploited", Score: 4},
			{Match: "127.0.0.10/31", Name: "dynamic", Score: 1.5},
		}},
		{Name: "dbl", Zone: "dbl.test", Kind: DomainList, Targets: LinkDomains | SenderDomain | HeloDomain | FromDomain,
			Codes: []Code{{Match: "127.0.1.2", Name: "spam", Score: 4}, {Match: "127.0.1.4", Name: "phish", Score: 6}}},
		{Name: "wl", Zone: "wl.test", Symbol: "RCVD_IN_WL", Codes: []Code{{Match: "127.0.0.3/0.0.0.255", Name: "hi", Score: -5}}},
	}
}

func startRBLDNSD(t *testing.T) (*testsvc.RBLDNSD, *Checker, *memMetrics) {
	t.Helper()
	srv := testsvc.StartRBLDNSD(t, rbldnsdZones...)
	m := newMemMetrics()
	c, err := NewChecker(Config{Resolvers: []string{srv.Addr}, Lists: rbldnsdLists(), Metrics: m, HealthInterval: -1, LookupNonPublic: TestNetworks(),
		QueryTimeout: 2 * time.Second, ListTimeout: 5 * time.Second, Deadline: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c, m
}

func TestRBLDNSDLookups(t *testing.T) {
	srv, c, m := startRBLDNSD(t)
	health := c.CheckHealth(context.Background())
	if !health.Resolvers[0].Up || len(health.Resolvers[0].Lists) != 0 || health.Resolvers[0].Problem != "" {
		t.Fatalf("rbldnsd fails the RFC 5782 test points: %+v", health.Resolvers[0])
	}
	tests := []struct {
		list, target string
		status       Status
		codes        string
		symbols      string
		reason       string
	}{
		{"bl", "192.0.2.1", Listed, "127.0.0.10 127.0.0.2", "RBL_BL_DYNAMIC RBL_BL_SPAM", "Spam source 192.0.2.1"},
		{"bl", "192.0.2.2", Listed, "127.0.0.4", "RBL_BL_EXPLOITED", "Exploited host 192.0.2.2"},
		{"bl", "198.51.100.77", Listed, "127.0.0.3", "RBL_BL_SNOWSHOE", "Snowshoe range"},
		{"bl", "192.0.2.99", NotListed, "", "", ""},
		{"bl", "::ffff:192.0.2.2", Listed, "127.0.0.4", "RBL_BL_EXPLOITED", ""},
		{"bl", "2001:db8:1::25", Listed, "127.0.0.2", "RBL_BL_SPAM", "IPv6 spam source"},
		{"bl", "2001:db8:2::25", NotListed, "", "", ""},
		{"bl", "192.0.2.66", Unknown, "", "", ""},
		{"dbl", "evil.example", Listed, "127.0.1.2", "RBL_DBL_SPAM", "Spam domain evil.example"},
		{"dbl", "EVIL.example.", Listed, "127.0.1.2", "RBL_DBL_SPAM", ""},
		{"dbl", "www.phish.example", Listed, "127.0.1.4", "RBL_DBL_PHISH", "Phishing domain"},
		{"dbl", "good.example", NotListed, "", "", ""},
		{"wl", "203.0.113.5", Listed, "127.0.10.3", "RCVD_IN_WL_HI", "Trusted sender"},
	}
	for _, tc := range tests {
		a := c.Lookup(context.Background(), tc.list, tc.target)
		if a.Status != tc.status {
			t.Errorf("%s in %s: %s (%v), want %s", tc.target, tc.list, a.Status, a.Err, tc.status)
			continue
		}
		var codes, syms []string
		for _, x := range a.Codes {
			codes = append(codes, x.String())
		}
		for _, s := range a.Symbols {
			syms = append(syms, s.Name)
		}
		slices.Sort(codes)
		slices.Sort(syms)
		if strings.Join(codes, " ") != tc.codes || strings.Join(syms, " ") != tc.symbols {
			t.Errorf("%s in %s: codes %v symbols %v, want %s / %s", tc.target, tc.list, codes, syms, tc.codes, tc.symbols)
		}
		if tc.reason != "" && !strings.Contains(a.Reason, tc.reason) {
			t.Errorf("%s in %s: reason %q, want %q", tc.target, tc.list, a.Reason, tc.reason)
		}
	}
	if got := m.get("portcullis_rbl_unknown_total", "list", "bl", "reason", "query-refused"); got != 1 {
		t.Errorf("refused code counter = %v", got)
	}
	if m.observed("portcullis_rbl_resolver_seconds", "resolver", srv.Addr) == 0 {
		t.Error("no latency observed")
	}
}

func TestRBLDNSDPipeline(t *testing.T) {
	_, c, _ := startRBLDNSD(t)
	fs := c.Filters()
	var names []string
	for _, f := range fs {
		names = append(names, f.Name())
	}
	if strings.Join(names, " ") != "rbl-connect rbl-mailfrom rbl-data" {
		t.Fatalf("filters = %v", names)
	}
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, fs...)
	ctx := context.Background()

	env := filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "mail.phish.example", MailFrom: "bounce@news.evil.example"}
	v := p.Check(ctx, filter.Connect, filter.NewMessage(env, nil, 0, filter.Limits{}))
	if !v.Has("RBL_BL_SPAM") || !v.Has("RBL_BL_DYNAMIC") || v.Score != 5.5 {
		t.Fatalf("connect verdict: %+v", v)
	}
	v = p.Check(ctx, filter.Connect, filter.NewMessage(filter.Envelope{ClientIP: netip.MustParseAddr("203.0.113.5")}, nil, 0, filter.Limits{}))
	if !v.Has("RCVD_IN_WL_HI") || v.Score != -5 {
		t.Fatalf("allowlisted connect verdict: %+v", v)
	}
	v = p.Check(ctx, filter.MailFrom, filter.NewMessage(env, nil, 0, filter.Limits{}))
	if !v.Has("RBL_DBL_SPAM") || !v.Has("RBL_DBL_PHISH") || v.Score != 10 {
		t.Fatalf("mailfrom verdict: %+v", v)
	}

	raw := "Received: from us (localhost [127.0.0.1]) by mx.us.example\r\n" +
		"Received: from relay.example (relay.example [192.0.2.2]) by us (Postfix)\r\n" +
		"From: Someone <someone@good.example>\r\n" +
		"Subject: offer\r\n" +
		"Content-Type: text/html\r\n\r\n" +
		`<a href="http://WWW.Phish.Example./login">bank</a> <img src="http://3325256705/x.gif">` +
		` http://good.example/ and www.evil.example&#x2e;` + "\r\n"
	c2, err := NewChecker(Config{Resolvers: c.cfg.Resolvers, Lists: rbldnsdLists(), HealthInterval: -1, LookupNonPublic: TestNetworks(),
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	p2 := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, c2.Filters()...)
	v = p2.Check(ctx, filter.Data, filter.NewMessageBytes(env, []byte(raw), filter.Limits{}))
	for _, want := range []string{"RBL_DBL_PHISH", "RBL_DBL_SPAM", "RBL_BL_EXPLOITED", "RBL_BL_SNOWSHOE"} {
		if !v.Has(want) {
			t.Errorf("data verdict lacks %s: %+v", want, v.Symbols)
		}
	}
	// 3325256705 is 198.51.100.1 (snowshoe); 192.0.2.2 is the relay below
	// the trusted boundary (exploited).
	for _, s := range v.Symbols {
		if s.Name == "RBL_BL_SNOWSHOE" && !strings.Contains(s.Detail, "198.51.100.1") {
			t.Errorf("numeric host detail: %q", s.Detail)
		}
		if strings.HasSuffix(s.Name, "_FAIL") {
			t.Errorf("unexpected failure: %v", s)
		}
	}
	if v.Action != filter.Reject {
		t.Errorf("action %s, want reject at score %v", v.Action, v.Score)
	}
}
