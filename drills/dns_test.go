package drills

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsMode is what a faultDNS does with a query.
type dnsMode int32

const (
	dnsForward dnsMode = iota // ask the upstream (a real rbldnsd) and pass its answer on
	dnsSilent                 // never answer: a resolver that stopped returning results
	dnsGarbage                // answer with bytes that are not a DNS message
	dnsHold                   // keep the query until the mode changes, then handle it
)

// faultDNS is an in-process resolver in front of a real DNS server whose
// faults the drill switches on and off.
type faultDNS struct {
	Addr     string
	upstream string
	mode     atomic.Int32
	queries  atomic.Int64
	mu       sync.Mutex
	changed  chan struct{}
	pc       net.PacketConn
}

func startFaultDNS(t testing.TB, upstream string, mode dnsMode) *faultDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &faultDNS{Addr: pc.LocalAddr().String(), upstream: upstream, pc: pc, changed: make(chan struct{})}
	f.mode.Store(int32(mode))
	go f.serve()
	t.Cleanup(func() { pc.Close(); f.set(dnsSilent) })
	return f
}

func (f *faultDNS) set(m dnsMode) {
	f.mu.Lock()
	f.mode.Store(int32(m))
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *faultDNS) serve() {
	buf := make([]byte, 4096)
	for {
		n, addr, err := f.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		f.queries.Add(1)
		go f.handle(q, addr)
	}
}

func (f *faultDNS) handle(q []byte, addr net.Addr) {
	for {
		f.mu.Lock()
		mode, changed := dnsMode(f.mode.Load()), f.changed
		f.mu.Unlock()
		switch mode {
		case dnsSilent:
			return
		case dnsGarbage:
			f.pc.WriteTo([]byte("\x00\x00garbage from a broken resolver\xff\xff\xff"), addr)
			return
		case dnsHold:
			select {
			case <-changed:
				continue
			case <-time.After(time.Minute):
				return
			}
		}
		m := new(dns.Msg)
		if m.Unpack(q) != nil {
			return
		}
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		resp, _, err := c.Exchange(m, f.upstream)
		if err != nil {
			return
		}
		if b, err := resp.Pack(); err == nil {
			f.pc.WriteTo(b, addr)
		}
		return
	}
}
