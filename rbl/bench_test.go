package rbl

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// benchLists are five IP lists served by one rbldnsd.
func benchChecker(b *testing.B) *Checker {
	b.Helper()
	var zones []testsvc.RBLZone
	var lists []List
	for i := range 5 {
		zone := fmt.Sprintf("bl%d.test", i)
		zones = append(zones, testsvc.RBLZone{Name: zone, Type: "ip4set", Data: ":127.0.0.2:listed\n127.0.0.2\n10.0.0.0/8\n"})
		lists = append(lists, List{Name: fmt.Sprintf("bl%d", i), Zone: zone, Score: 1})
	}
	srv := testsvc.StartRBLDNSD(b, zones...)
	c, err := NewChecker(Config{Resolvers: []string{srv.Addr}, Lists: lists, HealthInterval: -1, CacheSize: 1 << 20, LookupNonPublic: TestNetworks()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMessages checks messages against five lists on a loopback
// rbldnsd with 1, 10 and 100 messages in flight, cold (every address new)
// and cached (one address). It reports lookups per second, the p50 and
// p99 latency of a whole message, and the process CPU time per lookup.
func BenchmarkMessages(b *testing.B) {
	c := benchChecker(b)
	var next atomic.Uint32
	next.Store(1 << 24) // 1.0.0.0 onwards: public, unlisted
	for _, cached := range []bool{false, true} {
		for _, inflight := range []int{1, 10, 100} {
			name := fmt.Sprintf("cold/inflight=%d", inflight)
			if cached {
				name = fmt.Sprintf("cached/inflight=%d", inflight)
			}
			b.Run(name, func(b *testing.B) {
				hot := netip.MustParseAddr("192.0.2.1")
				c.run(context.Background(), []query{{ClientIP, hot.String()}}) // warm the cache
				var (
					mu   sync.Mutex
					lats []time.Duration
					todo atomic.Int64
					fail atomic.Int64
					why  sync.Map
				)
				todo.Store(int64(b.N))
				b.ResetTimer()
				cpu0, t0 := cpuTime(), time.Now()
				var wg sync.WaitGroup
				for range inflight {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var mine []time.Duration
						for todo.Add(-1) >= 0 {
							ip := hot
							if !cached {
								v := next.Add(1)
								ip = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
							}
							start := time.Now()
							for _, a := range c.run(context.Background(), []query{{ClientIP, ip.String()}}) {
								if a.Status == Unknown {
									fail.Add(1)
									why.Store(reason(a.Err), true)
								}
							}
							mine = append(mine, time.Since(start))
						}
						mu.Lock()
						lats = append(lats, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				elapsed, cpu := time.Since(t0), cpuTime()-cpu0
				b.StopTimer()
				if fail.Load() > 0 {
					var reasons []string
					why.Range(func(k, _ any) bool { reasons = append(reasons, k.(string)); return true })
					b.Logf("%d unknown lookups: %v", fail.Load(), reasons)
				}
				b.ReportMetric(float64(fail.Load()), "unknown")
				slices.Sort(lats)
				lookups := float64(5 * b.N)
				b.ReportMetric(lookups/elapsed.Seconds(), "lookups/s")
				b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(cpu.Nanoseconds())/lookups/1000, "cpu-µs/lookup")
			})
		}
	}
}

// BenchmarkCachedLookup is the CPU cost of one cached lookup.
func BenchmarkCachedLookup(b *testing.B) {
	f := List{Name: "bl", Zone: "bl.test", Codes: []Code{{Match: "127.0.0.2", Name: "x", Score: 1}}}
	c, err := NewChecker(Config{Resolvers: []string{"127.0.0.1:1"}, Lists: []List{f}, HealthInterval: -1, LookupNonPublic: TestNetworks()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	l := c.lists[0]
	qname := ipQuery(netip.MustParseAddr("192.0.2.1"), l.Zone)
	c.cache.put(qname, entry{listed: true, addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}, time.Hour, true, time.Now())
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if a := c.lookup(ctx, l, "192.0.2.1", qname); a.Status != Listed {
			b.Fatal(a.Status)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/lookup")
}

// BenchmarkUncachedLookup is one lookup that goes to rbldnsd, sequential.
func BenchmarkUncachedLookup(b *testing.B) {
	c := benchChecker(b)
	l := c.lists[0]
	ctx := context.Background()
	v := uint32(2 << 24)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		v++
		ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if a := c.lookup(ctx, l, ip.String(), ipQuery(ip, l.Zone)); a.Status != NotListed {
			b.Fatal(a.Status, a.Err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/lookup")
}

// BenchmarkRawExchange is the floor under BenchmarkUncachedLookup: one
// prepacked query written to and one answer read from a connected UDP
// socket to the same rbldnsd, nothing parsed. The difference between the
// two is what this package adds per lookup.
func BenchmarkRawExchange(b *testing.B) {
	c := benchChecker(b)
	conn, err := net.Dial("udp", c.resolvers[0].addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion("4.3.2.1.bl0.test.", dns.TypeA)
	pkt, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 512)
	cpu0 := cpuTime()
	for b.Loop() {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(pkt); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/lookup")
}

// BenchmarkLocalLookup is one lookup answered by a Local (a listing):
// the checker's own cost around the zone's probe.
func BenchmarkLocalLookup(b *testing.B) {
	loc := &memLocal{}
	loc.load(map[string]LocalAnswer{"192.0.2.1": {Listed: true, Codes: codes("127.0.0.2"), Reason: "spam"}})
	f := List{Name: "bl", Zone: "bl.test", Local: loc, Codes: []Code{{Match: "127.0.0.2", Name: "x", Score: 1}}}
	c, err := NewChecker(Config{Resolvers: []string{"127.0.0.1:1"}, Lists: []List{f}, HealthInterval: -1, LookupNonPublic: TestNetworks()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	l := c.lists[0]
	qname := ipQuery(netip.MustParseAddr("192.0.2.1"), l.Zone)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if a := c.lookup(ctx, l, "192.0.2.1", qname); a.Status != Listed {
			b.Fatal(a.Status)
		}
	}
}
