package rbl

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Fault modes of the fake resolver.
const (
	modeNormal      = "normal"      // answers from its data, NXDOMAIN with SOA otherwise
	modeSilent      = "silent"      // never answers
	modeServFail    = "servfail"    // SERVFAIL
	modeRefused     = "refused"     // REFUSED
	modeTruncate    = "truncate"    // TC over UDP, the answer over TCP
	modeHijack      = "hijack"      // every name resolves to 198.51.100.7
	modeQueryRefuse = "queryrefuse" // every name answers 127.255.255.254
	modeSlow        = "slow"        // normal, after a delay
	modeAAAA        = "aaaa"        // an AAAA record in reply to an A query
	modeCNAMEChain  = "cnamechain"  // a CNAME chain ending in a listing-looking A record
	modeCNAMELoop   = "cnameloop"   // two CNAMEs pointing at each other
	modeTXTOnly     = "txtonly"     // a TXT record in reply to an A query
)

// fakeDNS is an in-process resolver on a loopback port (UDP and TCP)
// that makes the faults no real server makes on demand.
type fakeDNS struct {
	Addr string

	mu    sync.Mutex
	mode  string
	delay time.Duration
	data  map[string][]netip.Addr // name → A records
	txt   map[string]string
	ttl   uint32

	udpQueries, tcpQueries atomic.Int64
	busy, maxBusy          atomic.Int64 // queries being served at once (slow mode)
	names                  sync.Map     // name → *atomic.Int64
}

func startFakeDNS(t *testing.T) *fakeDNS {
	t.Helper()
	f := &fakeDNS{mode: modeNormal, data: map[string][]netip.Addr{}, txt: map[string]string{}, ttl: 300}
	var (
		pc net.PacketConn
		l  net.Listener
	)
	for range 50 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tl, err := net.Listen("tcp", u.LocalAddr().String())
		if err == nil {
			pc, l = u, tl
			break
		}
		u.Close()
	}
	if pc == nil {
		t.Fatal("no free UDP+TCP port")
	}
	f.Addr = pc.LocalAddr().String()
	// Shutdown before a server has started fails and leaves it serving
	// (a test that fails at once would hang in cleanup): wait for both.
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	udp := &dns.Server{PacketConn: pc, NotifyStartedFunc: notify, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { f.serve(w, r, false) })}
	tcp := &dns.Server{Listener: l, NotifyStartedFunc: notify, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { f.serve(w, r, true) })}
	var wg sync.WaitGroup
	for _, s := range []*dns.Server{udp, tcp} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.ActivateAndServe()
		}()
	}
	<-started
	<-started
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
		wg.Wait()
	})
	// The RFC 5782 test points of the zones the tests use.
	for _, z := range []string{"bl.test", "wl.test"} {
		f.list("2.0.0.127."+z, "127.0.0.2")
	}
	f.list("test.dbl.test", "127.0.1.2")
	return f
}

func (f *fakeDNS) setMode(m string) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

func (f *fakeDNS) set(fn func(f *fakeDNS)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// list makes name answer the given A records.
func (f *fakeDNS) list(name string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	f.data[dns.Fqdn(name)] = as
}

// queries returns how many times name was asked (A and TXT, UDP and TCP).
func (f *fakeDNS) queries(name string) int64 {
	v, ok := f.names.Load(dns.Fqdn(name))
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func (f *fakeDNS) total() int64 { return f.udpQueries.Load() + f.tcpQueries.Load() }

func (f *fakeDNS) serve(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
	if tcp {
		f.tcpQueries.Add(1)
	} else {
		f.udpQueries.Add(1)
	}
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	n, _ := f.names.LoadOrStore(strings.ToLower(q.Name), new(atomic.Int64))
	n.(*atomic.Int64).Add(1)

	f.mu.Lock()
	mode, delay := f.mode, f.delay
	addrs := slices.Clone(f.data[strings.ToLower(q.Name)])
	txt := f.txt[strings.ToLower(q.Name)]
	ttl := f.ttl
	f.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	switch mode {
	case modeSilent:
		return
	case modeServFail:
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	case modeRefused:
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	case modeTruncate:
		if !tcp {
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
	case modeHijack:
		addrs = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
	case modeQueryRefuse:
		addrs = []netip.Addr{netip.MustParseAddr("127.255.255.254")}
	case modeSlow:
		n := f.busy.Add(1)
		for {
			m := f.maxBusy.Load()
			if n <= m || f.maxBusy.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(delay) // a slow resolver, not synchronisation
		f.busy.Add(-1)
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	switch mode {
	case modeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP("::1")}}
		_ = w.WriteMsg(m)
		return
	case modeCNAMEChain:
		a := &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 2).To4()}
		a.Hdr.Name = "y.elsewhere.test."
		m.Answer = []dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: "x.elsewhere.test."},
			&dns.CNAME{Hdr: dns.RR_Header{Name: "x.elsewhere.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: "y.elsewhere.test."}, a}
		_ = w.WriteMsg(m)
		return
	case modeCNAMELoop:
		m.Answer = []dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: "loop.test."},
			&dns.CNAME{Hdr: dns.RR_Header{Name: "loop.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: q.Name}}
		_ = w.WriteMsg(m)
		return
	case modeTXTOnly:
		m.Answer = []dns.RR{&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{"listed, honest"}}}
		_ = w.WriteMsg(m)
		return
	}
	switch {
	case len(addrs) == 0:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 600},
			Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 120}}
	case q.Qtype == dns.TypeA:
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		}
	case q.Qtype == dns.TypeTXT && txt != "":
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{txt}})
	}
	_ = w.WriteMsg(m)
}

// memMetrics is an in-memory filter.Metrics for assertions.
type memMetrics struct {
	mu     sync.Mutex
	values map[string]float64 // name{k=v,...} → counter or gauge
	counts map[string]int     // observations
}

func newMemMetrics() *memMetrics {
	return &memMetrics{values: map[string]float64{}, counts: map[string]int{}}
}

func key(name string, labels []string) string {
	var b strings.Builder
	b.WriteString(name)
	for i := 0; i+1 < len(labels); i += 2 {
		fmt.Fprintf(&b, ",%s=%s", labels[i], labels[i+1])
	}
	return b.String()
}

func (m *memMetrics) Add(name string, d float64, labels ...string) {
	m.mu.Lock()
	m.values[key(name, labels)] += d
	m.mu.Unlock()
}

func (m *memMetrics) Set(name string, v float64, labels ...string) {
	m.mu.Lock()
	m.values[key(name, labels)] = v
	m.mu.Unlock()
}

func (m *memMetrics) Observe(name string, _ float64, labels ...string) {
	m.mu.Lock()
	m.counts[key(name, labels)]++
	m.mu.Unlock()
}

// get sums the counters called name whose labels include every given
// label pair.
func (m *memMetrics) get(name string, labels ...string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum float64
	for k, v := range m.values {
		if matchKey(k, name, labels) {
			sum += v
		}
	}
	return sum
}

// observed counts the observations of name with those labels.
func (m *memMetrics) observed(name string, labels ...string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, v := range m.counts {
		if matchKey(k, name, labels) {
			n += v
		}
	}
	return n
}

func matchKey(k, name string, labels []string) bool {
	parts := strings.Split(k, ",")
	if parts[0] != name {
		return false
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if !slices.Contains(parts[1:], labels[i]+"="+labels[i+1]) {
			return false
		}
	}
	return true
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
