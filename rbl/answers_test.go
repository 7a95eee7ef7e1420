package rbl

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// A return code the list does not define is unknown for that list
// (zen's 127.0.0.128), not a listing: a FAIL symbol, not a score.
func TestUndefinedCodeIsUnknown(t *testing.T) {
	f := startFakeDNS(t)
	f.list("1.2.0.192.bl.test", "127.0.0.128")
	f.list("2.2.0.192.bl.test", "127.0.0.128", "127.0.0.2")
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()}})
	a := h.mustStatus(t, "bl", "192.0.2.1", Unknown)
	var ae *AnswerError
	if !errors.Is(a.Err, ErrUndefinedCode) || !errors.As(a.Err, &ae) || ae.Answer != mustAddr("127.0.0.128") {
		t.Fatalf("err %v, want ErrUndefinedCode for 127.0.0.128", a.Err)
	}
	if got := h.m.get("portcullis_rbl_unknown_total", "list", "bl", "reason", "undefined-code"); got != 1 {
		t.Fatalf("unknown counter %v", got)
	}
	// Beside a defined code it lists, by the defined code only.
	a = h.mustStatus(t, "bl", "192.0.2.2", Listed)
	if len(a.Symbols) != 1 || a.Symbols[0].Name != "RBL_BL_SPAM" {
		t.Fatalf("symbols %v", a.Symbols)
	}
	// The list's doing, not the resolver's: the resolver stays in rotation.
	for range 5 {
		h.mustStatus(t, "bl", "192.0.2.1", Unknown)
	}
	if h.Health().Resolvers[0].Problem != "" {
		t.Fatalf("resolver taken out for a list's undefined code: %+v", h.Health().Resolvers[0])
	}
	res, err := h.Filters()[0].Check(context.Background(), filter.NewMessage(filter.Envelope{ClientIP: mustAddr("192.0.2.1")}, nil, 0, filter.Limits{}))
	if err != nil || len(res.Symbols) != 1 || res.Symbols[0].Name != "RBL_BL_FAIL" || res.Symbols[0].Score != 0.5 {
		t.Fatalf("filter: %+v %v, want RBL_BL_FAIL only", res.Symbols, err)
	}
}

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"2a00:1450:4001::1", true}, {"::ffff:8.8.4.4", true},
		{"100.63.255.255", true}, {"100.128.0.0", true}, {"172.32.0.1", true}, {"198.20.0.1", true},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false}, // RFC 1918
		{"100.64.0.1", false}, {"100.127.255.254", false}, // CGNAT
		{"127.0.0.2", false}, {"::1", false}, {"::ffff:127.0.0.1", false}, // loopback
		{"169.254.1.1", false}, {"fe80::1", false}, // link-local
		{"192.0.2.1", false}, {"198.51.100.7", false}, {"203.0.113.9", false}, {"2001:db8::25", false}, {"3fff::1", false}, // documentation
		{"198.18.0.1", false}, {"0.1.2.3", false}, {"224.0.0.1", false}, {"255.255.255.255", false}, {"fd00::1", false}, {"ff02::1", false}, {"::", false},
	} {
		if got := Public(netip.MustParseAddr(tc.ip)); got != tc.public {
			t.Errorf("Public(%s) = %v (%s), want %v", tc.ip, got, Range(netip.MustParseAddr(tc.ip)), tc.public)
		}
	}
	if Public(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

// Non-public client addresses are never sent to the lists: the connect
// filter adds RBL_LOCAL instead; links to non-public numeric hosts too.
// LookupNonPublic lets chosen ranges through.
func TestNonPublicNotSent(t *testing.T) {
	f := startFakeDNS(t)
	for _, n := range []string{"1.0.0.10", "1.0.64.100", "1.0.0.127", "1.1.254.169", "1.2.0.192", "25.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"} {
		f.list(n+".bl.test", "127.0.0.2")
	}
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()}, LookupNonPublic: []netip.Prefix{}, LocalScore: 0.25})
	conn := h.Filters()[0]
	for _, ip := range []string{"10.0.0.1", "100.64.0.1", "127.0.0.1", "169.254.1.1", "192.0.2.1", "2001:db8::25", "::ffff:10.0.0.1"} {
		before := f.total()
		res, err := conn.Check(context.Background(), filter.NewMessage(filter.Envelope{ClientIP: mustAddr(ip)}, nil, 0, filter.Limits{}))
		if err != nil || len(res.Symbols) != 1 || res.Symbols[0].Name != SymLocal || res.Symbols[0].Score != 0.25 ||
			!strings.Contains(res.Symbols[0].Detail, "not sent to DNS lists") {
			t.Errorf("%s: %+v %v, want RBL_LOCAL only", ip, res.Symbols, err)
		}
		if f.total() != before {
			t.Errorf("%s was sent to the resolver", ip)
		}
		// Lookup says unknown, never "not listed", and asks nothing.
		if a := h.Lookup(context.Background(), "bl", ip); a.Status != Unknown || !errors.Is(a.Err, ErrNotPublic) || f.total() != before {
			t.Errorf("Lookup(%s) = %s %v", ip, a.Status, a.Err)
		}
	}

	// Links to non-public numeric hosts in the body: not asked, marked.
	data := newHarness(t, Config{Resolvers: []string{f.Addr}, LookupNonPublic: []netip.Prefix{},
		Lists: []List{{Name: "bl", Zone: "bl.test", Targets: LinkIPs, Codes: []Code{{Match: "127.0.0.2", Score: 4}}}}})
	before := f.total()
	m := filter.NewMessageBytes(filter.Envelope{}, []byte("Content-Type: text/plain\r\n\r\nhttp://10.0.0.1/admin http://192.168.1.1/ http://8.8.8.8/\r\n"), filter.Limits{})
	res, err := data.Filters()[0].Check(context.Background(), m)
	if err != nil || !strings.Contains(symbolDetail(res, SymLocal), "10.0.0.1 (link): private") {
		t.Fatalf("links: %+v %v", res.Symbols, err)
	}
	if f.queries("1.0.0.10.bl.test") != 0 || f.queries("1.1.168.192.bl.test") != 0 || f.queries("8.8.8.8.bl.test") == 0 || f.total() == before {
		t.Fatalf("link lookups: private asked or public not asked")
	}

	// Allowed explicitly: asked and listed.
	allowed := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()},
		LookupNonPublic: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	h.mustStatus(t, "bl", "8.8.8.8", NotListed)
	allowed.mustStatus(t, "bl", "10.0.0.1", Listed)
	allowed.mustStatus(t, "bl", "192.0.2.1", Unknown)
}

func symbolDetail(res filter.Result, name string) string {
	for _, s := range res.Symbols {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}

// Against rbldnsd: a listed 127.0.0.x client is only asked about with
// LookupNonPublic, and an undefined return code is unknown.
func TestRBLDNSDNonPublicAndUndefinedCode(t *testing.T) {
	srv := testsvc.StartRBLDNSD(t, testsvc.RBLZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:listed $\n127.0.0.2\n127.0.0.9\n192.0.2.128 :127.0.0.128:odd\n"})
	lists := []List{{Name: "bl", Zone: "bl.test", FailScore: 0.5, NoTXT: true, Codes: []Code{{Match: "127.0.0.2", Name: "spam", Score: 4}}}}
	strict, err := NewChecker(Config{Resolvers: []string{srv.Addr}, Lists: lists, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if a := strict.Lookup(context.Background(), "bl", "127.0.0.9"); a.Status != Unknown || !errors.Is(a.Err, ErrNotPublic) {
		t.Fatalf("loopback without LookupNonPublic: %s %v", a.Status, a.Err)
	}
	// The health check still asks the RFC 5782 test points.
	if h := strict.CheckHealth(context.Background()); !h.Resolvers[0].Up || len(h.Resolvers[0].Lists) != 0 {
		t.Fatalf("health: %+v", h.Resolvers[0])
	}
	loose, err := NewChecker(Config{Resolvers: []string{srv.Addr}, Lists: lists, HealthInterval: -1, LookupNonPublic: TestNetworks()})
	if err != nil {
		t.Fatal(err)
	}
	defer loose.Close()
	if a := loose.Lookup(context.Background(), "bl", "127.0.0.9"); a.Status != Listed {
		t.Fatalf("loopback with LookupNonPublic: %s %v", a.Status, a.Err)
	}
	if a := loose.Lookup(context.Background(), "bl", "192.0.2.128"); a.Status != Unknown || !errors.Is(a.Err, ErrUndefinedCode) {
		t.Fatalf("undefined code from rbldnsd: %s %v", a.Status, a.Err)
	}
	if a := loose.Lookup(context.Background(), "bl", "192.0.2.129"); a.Status != NotListed {
		t.Fatalf("unlisted: %s %v", a.Status, a.Err)
	}
}

// A link spelled in UTF-7 HTML reaches the URI list.
func TestUTF7LinkReachesURIBL(t *testing.T) {
	f := startFakeDNS(t)
	f.list("hidden.example.dbl.test", "127.0.1.2")
	h := newHarness(t, Config{Resolvers: []string{f.Addr},
		Lists: []List{{Name: "dbl", Zone: "dbl.test", Kind: DomainList, Codes: []Code{{Match: "127.0.1.2", Name: "spam", Score: 4}}}}})
	// <a href="http://hidden.example/">, every byte in UTF-7.
	body := "+ADwAYQAgAGgAcgBlAGYAPQAiAGgAdAB0AHAAOgAvAC8AaABpAGQAZABlAG4ALgBlAHgAYQBtAHAAbABlAC8AIgA+-"
	m := filter.NewMessageBytes(filter.Envelope{}, []byte("Content-Type: text/html; charset=utf-7\r\n\r\n"+body+"\r\n"), filter.Limits{})
	res, err := h.Filters()[0].Check(context.Background(), m)
	if err != nil || symbolDetail(res, "RBL_DBL_SPAM") == "" {
		t.Fatalf("%+v %v, want RBL_DBL_SPAM for the UTF-7 link", res.Symbols, err)
	}
}
