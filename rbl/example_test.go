package rbl_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rbl"
)

// exampleResolver stands in for a recursive resolver: 192.0.2.1 is listed
// in bl.example as spam, 192.0.2.66 gets Spamhaus's "query refused" code,
// everything else is NXDOMAIN.
func exampleResolver() (addr string, stop func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	answers := map[string]string{
		"1.2.0.192.bl.example.":  "127.0.0.2",
		"66.2.0.192.bl.example.": "127.255.255.254",
		"2.0.0.127.bl.example.":  "127.0.0.2", // RFC 5782 test point
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if a, ok := answers[q.Name]; ok && q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(a)})
		} else if !ok {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	return pc.LocalAddr().String(), func() { _ = srv.Shutdown() }
}

func ExampleChecker_Lookup() {
	addr, stop := exampleResolver()
	defer stop()
	c, err := rbl.NewChecker(rbl.Config{
		Resolvers: []string{addr},
		Lists: []rbl.List{{
			Name: "bl", Zone: "bl.example", NoTXT: true,
			Codes: []rbl.Code{{Match: "127.0.0.2", Name: "spam", Score: 4}},
		}},
		HealthInterval: -1,
		// The example asks about documentation addresses, which are never
		// sent to lists unless allowed like this (tests and demos only).
		LookupNonPublic: rbl.TestNetworks(),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.66"} {
		a := c.Lookup(context.Background(), "bl", ip)
		fmt.Println(ip, a.Status, a.Symbols)
	}
	// Output:
	// 192.0.2.1 listed [RBL_BL_SPAM(4.00)]
	// 192.0.2.2 not-listed []
	// 192.0.2.66 unknown []
}

func ExampleChecker_Filters() {
	addr, stop := exampleResolver()
	defer stop()
	c, err := rbl.NewChecker(rbl.Config{
		Resolvers:      []string{addr},
		Lists:          []rbl.List{{Name: "bl", Zone: "bl.example", NoTXT: true, Score: 4, FailScore: 0.5}},
		HealthInterval: -1,
		// The example asks about documentation addresses, which are never
		// sent to lists unless allowed like this (tests and demos only).
		LookupNonPublic: rbl.TestNetworks(),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, c.Filters()...)
	for _, ip := range []string{"192.0.2.1", "192.0.2.66"} {
		env := filter.Envelope{ClientIP: netip.MustParseAddr(ip)}
		v := p.Check(context.Background(), filter.Connect, filter.NewMessage(env, nil, 0, filter.Limits{}))
		fmt.Println(ip, v.Action, v.Symbols[0].Name, v.Score)
	}
	// Output:
	// 192.0.2.1 accept RBL_BL 4
	// 192.0.2.66 accept RBL_BL_FAIL 0.5
}

// Addresses no public list can know are not sent to one.
func ExamplePublic() {
	for _, s := range []string{"192.0.2.1", "100.64.7.1", "10.1.2.3", "fe80::1", "8.8.8.8"} {
		a := netip.MustParseAddr(s)
		fmt.Printf("%s %v %q\n", s, rbl.Public(a), rbl.Range(a))
	}
	// Output:
	// 192.0.2.1 false "documentation (TEST-NET-1)"
	// 100.64.7.1 false "CGNAT shared space (RFC 6598)"
	// 10.1.2.3 false "private (RFC 1918)"
	// fe80::1 false "link-local"
	// 8.8.8.8 true ""
}

// oneListing is a Local holding one listed address, as a zone loaded in
// memory would (package fleet's zones are the real thing).
type oneListing struct{ ip netip.Addr }

func (o oneListing) LookupLocal(ip netip.Addr) (rbl.LocalAnswer, bool) {
	if !ip.Is4() {
		return rbl.LocalAnswer{}, false // not covered: asked over DNS
	}
	if ip != o.ip {
		return rbl.LocalAnswer{}, true // covered, not listed
	}
	return rbl.LocalAnswer{Listed: true, Codes: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, Reason: "spam source"}, true
}

// A list answered from memory: no query leaves the process for the
// addresses the zone covers, and the answers read as DNS ones would.
func ExampleList_local() {
	c, err := rbl.NewChecker(rbl.Config{
		Resolvers: []string{"127.0.0.1:9"}, // the DNS fallback, unreachable here
		Lists: []rbl.List{{Name: "bl", Zone: "bl.example", Local: oneListing{netip.MustParseAddr("192.0.2.1")},
			Codes: []rbl.Code{{Match: "127.0.0.2", Name: "spam", Score: 4}}}},
		HealthInterval:  -1,
		LookupNonPublic: rbl.TestNetworks(),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		a := c.Lookup(context.Background(), "bl", ip)
		fmt.Println(ip, a.Status, a.Local, a.Symbols, a.Reason)
	}
	// Output:
	// 192.0.2.1 listed true [RBL_BL_SPAM(4.00)] spam source
	// 192.0.2.2 not-listed true []
}
