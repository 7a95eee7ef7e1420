package rbl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestLinksCapped(t *testing.T) {
	f := startFakeDNS(t)
	f.list("spam0.example.dbl.test", "127.0.1.2")
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, MaxLinks: 5,
		Lists: []List{{Name: "dbl", Zone: "dbl.test", Kind: DomainList, Score: 3}}})
	var body strings.Builder
	body.WriteString("From: a@b.example\r\nContent-Type: text/plain\r\n\r\n")
	for i := range 60 {
		// Two hosts of each registrable domain: one lookup each.
		fmt.Fprintf(&body, "http://www.spam%d.example/ http://img.spam%d.example/x\r\n", i, i)
	}
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(body.String()), filter.Limits{})
	fs := h.Filters()
	if len(fs) != 1 || fs[0].Name() != DataFilterName {
		t.Fatalf("filters %v", fs)
	}
	res, err := fs[0].Check(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.Symbols {
		got = append(got, fmt.Sprintf("%s:%g:%s", s.Name, s.Score, s.Detail))
	}
	want := []string{
		"RBL_LINKS_CAPPED:0:checked 5 of 60 link hosts",
		"RBL_DBL:3:spam0.example listed in dbl: 127.0.1.2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("symbols:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var asked int
	for i := range 60 {
		if f.queries(fmt.Sprintf("spam%d.example.dbl.test", i)) > 0 {
			asked++
		}
	}
	if asked != 5 {
		t.Fatalf("%d link domains asked, want 5", asked)
	}
	if h.m.get("portcullis_rbl_links_capped_total") != 1 {
		t.Fatal("cap not counted")
	}
}

func TestSenderDomains(t *testing.T) {
	f := startFakeDNS(t)
	f.list("evil.example.dbl.test", "127.0.1.2")
	h := newHarness(t, Config{Resolvers: []string{f.Addr},
		Lists: []List{{Name: "dbl", Zone: "dbl.test", Kind: DomainList, Score: 3, Targets: SenderDomain | HeloDomain | FromDomain}}})
	fs := h.Filters()
	if len(fs) != 2 || fs[0].Name() != MailFromFilterName || fs[1].Name() != DataFilterName {
		t.Fatalf("filters %v", fs)
	}
	for _, tc := range []struct {
		env  filter.Envelope
		raw  string
		f    int
		want string
	}{
		{filter.Envelope{MailFrom: "x@mail.EVIL.example", Helo: "[192.0.2.1]"}, "", 0, "RBL_DBL"},
		{filter.Envelope{MailFrom: "", Helo: "host.evil.example."}, "", 0, "RBL_DBL"},
		{filter.Envelope{MailFrom: "x@good.example", Helo: "localhost"}, "", 0, ""},
		{filter.Envelope{}, "From: \"Bank\" <alert@evil.example>\r\n\r\nhi\r\n", 1, "RBL_DBL"},
		{filter.Envelope{}, "From: broken <<alert@EVIL.example>\r\n\r\nhi\r\n", 1, "RBL_DBL"},
		{filter.Envelope{}, "From: ok@good.example\r\n\r\nhi\r\n", 1, ""},
	} {
		var m *filter.Message
		if tc.raw == "" {
			m = filter.NewMessage(tc.env, nil, 0, filter.Limits{})
		} else {
			m = filter.NewMessageBytes(tc.env, []byte(tc.raw), filter.Limits{})
		}
		res, err := fs[tc.f].Check(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range res.Symbols {
			names = append(names, s.Name)
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("%+v %q: symbols %v, want %q", tc.env, tc.raw, res.Symbols, tc.want)
		}
	}
}

func TestConcurrencyLimits(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		maxParallel, inFlight int
		want                  int64
	}{
		{"MaxParallel", 3, 100, 3},
		{"MaxInFlight", 100, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeDNS(t)
			f.set(func(f *fakeDNS) { f.mode, f.delay = modeSlow, 50*time.Millisecond })
			h := newHarness(t, Config{Resolvers: []string{f.Addr}, MaxParallel: tc.maxParallel, MaxInFlight: tc.inFlight,
				QueryTimeout: 10 * time.Second, ListTimeout: 20 * time.Second, Deadline: 30 * time.Second,
				Lists: []List{{Name: "dbl", Zone: "dbl.test", Kind: DomainList}}})
			var body strings.Builder
			body.WriteString("Content-Type: text/plain\r\n\r\n")
			for i := range 10 {
				fmt.Fprintf(&body, "http://d%d.example/\r\n", i)
			}
			m := filter.NewMessageBytes(filter.Envelope{}, []byte(body.String()), filter.Limits{})
			res, err := h.Filters()[0].Check(context.Background(), m)
			if err != nil || len(res.Symbols) != 0 {
				t.Fatalf("%v %v", res, err)
			}
			if got := f.maxBusy.Load(); got != tc.want {
				t.Fatalf("%d queries at once, want %d", got, tc.want)
			}
		})
	}
}

func TestReceivedChain(t *testing.T) {
	f := startFakeDNS(t)
	for _, ip := range []string{"1.113.0.203", "2.113.0.203", "3.113.0.203", "10.0.0.10"} {
		f.list(ip+".bl.test", "127.0.0.2")
	}
	raw := "Received: from edge (edge [10.0.0.10]) by mx\r\n" +
		"Received: from a (a [203.0.113.1]) by edge\r\n" +
		"Received: from lan (lan [192.168.1.5]) by a\r\n" +
		"Received: from b (b [203.0.113.2]) by lan\r\n" +
		"Received: from c (c [203.0.113.3]) by b\r\n" +
		"Subject: x\r\n\r\nbody\r\n"
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, MaxReceived: 2,
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Lists:           []List{{Name: "bl", Zone: "bl.test", Targets: ReceivedIPs, Score: 1}}})
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{})
	res, err := h.Filters()[0].Check(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Symbols) != 1 || !strings.Contains(res.Symbols[0].Detail, "203.0.113.1 listed") ||
		!strings.Contains(res.Symbols[0].Detail, "203.0.113.2 listed") || strings.Contains(res.Symbols[0].Detail, "203.0.113.3") {
		t.Fatalf("symbols %v", res.Symbols)
	}
	for ip, want := range map[string]int64{"10.0.0.10": 0, "5.1.168.192": 0, "3.113.0.203": 0} {
		if n := f.queries(ip + ".bl.test"); n != want {
			t.Errorf("%s asked %d times", ip, n)
		}
	}
}

func TestFromDomainsCapped(t *testing.T) {
	var addrs []string
	for i := range 20 {
		addrs = append(addrs, fmt.Sprintf("a@d%d.example", i), fmt.Sprintf("b@d%d.example", i))
	}
	raw := "From: " + strings.Join(addrs, ", ") + "\r\n\r\nbody\r\n"
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{})
	got := fromDomains(m)
	if strings.Join(got, " ") != "d0.example d1.example d2.example d3.example d4.example" {
		t.Fatalf("from domains %v", got)
	}
}

// TestListTimeoutWhileWaitingForInFlight: with MaxInFlight queries on the
// wire, a lookup waits for a token by its list's deadline, then is a
// timeout that never reached the resolver.
func TestListTimeoutWhileWaitingForInFlight(t *testing.T) {
	f := startFakeDNS(t)
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, MaxInFlight: 1, ListTimeout: 100 * time.Millisecond,
		Lists: []List{{Name: "bl", Zone: "bl.test", Score: 1}}})
	h.inflight <- struct{}{} // the one token, held
	l := h.lists[0]
	ip := netip.MustParseAddr("192.0.2.7")
	a := h.lookup(context.Background(), l, ip.String(), ipQuery(ip, l.Zone))
	<-h.inflight
	if a.Status != Unknown || !errors.Is(a.Err, ErrTimeout) {
		t.Fatalf("status %v, err %v; want unknown, a timeout", a.Status, a.Err)
	}
	if n := f.udpQueries.Load(); n != 0 {
		t.Fatalf("%d queries reached the resolver", n)
	}
	// With the token free, the same lookup is answered.
	a = h.lookup(context.Background(), l, ip.String(), ipQuery(ip, l.Zone))
	if a.Status != NotListed || f.udpQueries.Load() != 1 {
		t.Fatalf("status %v, err %v after %d queries", a.Status, a.Err, f.udpQueries.Load())
	}
}
