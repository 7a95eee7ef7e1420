package fleet

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/portcullis-mail/portcullis/fleet/zone"
	"github.com/portcullis-mail/portcullis/rbl"
)

// benchZoneText is n /32 entries spread over 11.0.0.0/8 and n/100 /24s
// over 12.0.0.0/8.
func benchZoneText(n int) []byte {
	var b bytes.Buffer
	b.WriteString(":127.0.0.2:listed, see https://bl.test/$\n")
	for i := range n {
		v := uint32(i) * 83 // spread, distinct below 2^24/83
		fmt.Fprintf(&b, "11.%d.%d.%d\n", v>>16&0xff, v>>8&0xff, v&0xff)
	}
	for i := range n / 100 {
		fmt.Fprintf(&b, "12.%d.%d.0/24 :127.0.0.3:range\n", i>>8&0xff, i&0xff)
	}
	return b.Bytes()
}

// BenchmarkZoneLookup is one rbl lookup answered from a zone in memory
// (fleet.Zone over zone.Set) of 200,000 entries, half of the lookups
// listed: the cost that replaces a DNS round trip (rbl's
// BenchmarkUncachedLookup against rbldnsd).
func BenchmarkZoneLookup(b *testing.B) {
	const n = 200_000
	set, err := zone.ReadBytes(benchZoneText(n), zone.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	z := &Zone{name: "bl.test"}
	z.cur.Store(&servedZone{info: ZoneInfo{Version: 1}, set: set})
	c, err := rbl.NewChecker(rbl.Config{Resolvers: []string{"127.0.0.1:9"}, HealthInterval: -1,
		Lists: []rbl.List{{Name: "bl", Zone: "bl.test", Local: z, Codes: []rbl.Code{{Match: "127.0.0.2", Name: "spam", Score: 4}, {Match: "127.0.0.3", Name: "range", Score: 2}}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ips := make([]string, 1024)
	for i := range ips {
		v := uint32(i*7919%n) * 83
		if i%2 == 1 {
			v++ // not listed
		}
		ips[i] = netip.AddrFrom4([4]byte{11, byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if a := c.Lookup(ctx, "bl", ips[i%len(ips)]); !a.Local || a.Status == rbl.Unknown {
			b.Fatalf("%s: %+v", ips[i%len(ips)], a)
		}
		i++
	}
}

// BenchmarkZoneRead parses a zone of 1,000,000 entries and reports its
// heap size.
func BenchmarkZoneRead(b *testing.B) {
	text := benchZoneText(1_000_000)
	b.SetBytes(int64(len(text)))
	var set *zone.Set
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var err error
		if set, err = zone.ReadBytes(text, zone.Limits{}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
	}
	runtime.KeepAlive(set)
}
