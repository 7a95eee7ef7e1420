package rbl

import (
	"errors"
	"testing"

	"github.com/miekg/dns"
)

func FuzzReceivedFrom(f *testing.F) {
	for _, s := range []string{
		"from mx.example.com (mx.example.com [192.0.2.1]) by us",
		"from x ([IPv6:2001:db8::5]) by y", "from [[[]]] by", "from (a [1.2.3.4", "[::ffff:1.2.3.4]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := receivedFrom(s)
		if ok && (!ip.IsValid() || ip.Is4In6()) {
			t.Fatalf("receivedFrom(%q) = %v", s, ip)
		}
	})
}

func FuzzParseMatch(f *testing.F) {
	for _, s := range []string{"127.0.0.2", "127.0.0.0/24", "127.0.0.3/0.0.0.255", "&8", "&0x80", "/", "&", "1.2.3.4/-1"} {
		f.Add(s, uint32(0x7f000002))
	}
	f.Fuzz(func(t *testing.T, s string, a uint32) {
		m, err := parseMatch(s)
		if err != nil {
			return
		}
		if m.bits == 0 && m.value&^m.mask != 0 {
			t.Fatalf("%q: value %x outside mask %x", s, m.value, m.mask)
		}
		if m.bits == 0 && m.match(a) != (a&m.mask == m.value) {
			t.Fatal("match disagrees with mask")
		}
	})
}

// FuzzAnswer feeds arbitrary DNS messages to the answer parsing: whatever
// a resolver sends, parsing never panics, a listing is only ever 127/8
// addresses that are not refused codes, and reasons stay bounded.
func FuzzAnswer(f *testing.F) {
	seed := new(dns.Msg)
	seed.SetQuestion("2.0.0.127.bl.test.", dns.TypeA)
	seed.Answer = []dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: "2.0.0.127.bl.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{127, 0, 0, 2}},
		&dns.TXT{Hdr: dns.RR_Header{Name: "2.0.0.127.bl.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"listed"}},
	}
	seed.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "bl.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Minttl: 5}}
	b, _ := seed.Pack()
	f.Add(b)
	seed.Answer = seed.Answer[:1]
	b, _ = seed.Pack()
	f.Add(b)
	seed.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "2.0.0.127.bl.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "2.0.0.127.bl.test."}}
	b, _ = seed.Pack()
	f.Add(b)
	l := List{Zone: "bl.test", Codes: []Code{{Match: "127.0.0.2", Name: "x", Score: 1}}}
	if err := l.prepare(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		raw, err := parseA(m)
		if len(parseTXT(m)) > maxReason {
			t.Fatal("reason not bounded")
		}
		if err != nil {
			if !errors.Is(err, ErrNotAnswer) {
				t.Fatalf("parseA error %v is not ErrNotAnswer", err)
			}
			return
		}
		for _, rr := range m.Answer {
			if _, isA := rr.(*dns.A); !isA && rr.Header().Rrtype != dns.TypeRRSIG {
				t.Fatalf("answer with a %s record accepted", dns.TypeToString[rr.Header().Rrtype])
			}
		}
		if raw.nx {
			if len(raw.addrs) != 0 {
				t.Fatal("not listed with addresses")
			}
			return
		}
		if l.classify(raw.addrs) == nil {
			for _, a := range raw.addrs {
				if !loopback8.Contains(a) || l.refused[u32(a)] {
					t.Fatalf("listing with %v", a)
				}
			}
			if len(l.symbols(raw.addrs)) == 0 {
				t.Fatal("a listing without symbols")
			}
		}
	})
}
