package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/fleet/zone"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/rbl"
)

// identityZone exercises every form of the ip4set format that package
// zone reads: defaults, A values (full and bare octet), TXT with and
// without $, text after a space, shortened addresses, CIDR, ranges,
// exclusions, and answers the list judges unknown.
var identityZone = `# identity zone
$TTL 300
:127.0.0.2:Listed, see https://bl.test/$
127.0.0.2
192.0.2.1
192.0.2.2 :127.0.0.4:Exploited host $
198.51.100.0/24 :127.0.0.3:Snowshoe range
!198.51.100.7
203.0.113.5-203.0.113.9
203.0.113.200-203.0.113.255 :4
11.1
11.2.3
12.0.0.0/8 :5:bare octet
13.0.0.5 text after a space for $
:127.0.0.10
13.0.0.1
13.0.0.2
13.0.0.3 :127.0.0.2
13.0.0.4 :127.0.0.2:
192.0.2.66 :127.255.255.254:Query refused
192.0.2.67 :10.0.0.1:outside 127/8
192.0.2.68 :127.0.0.128:undefined
13.0.0.6 :127.0.0.3:` + strings.Repeat("long text ", 40) + `
14.0.0.0/8
!14.1.0.0/16
14.1.2.0/24 :127.0.0.3:listed inside an exclusion
15.0.0.0/31
16.0.0.0-17.255.255.255 :127.0.0.3:a range of /8s
18.1.1.1 :2:same
18.1.1.1 :3:same
18.1.1.2 :2:x
18.1.1.2 :2:y
18.1.1.3 :2:z
18.1.1.3 :2:z
18.1.1.4 :2:costs $$5 at $, "quoted" \back Ã©tÃ©
18.1.2.0/22
!18.1.0.0/20
:127.0.0.2:default again $
18.1.1.5 :3
18.1.1.6 :3:
`

func identityList() rbl.List {
	return rbl.List{Name: "bl", Zone: "bl.test", Codes: []rbl.Code{
		{Match: "127.0.0.2", Name: "spam", Score: 4},
		{Match: "127.0.0.3", Name: "snowshoe", Score: 3},
		{Match: "127.0.0.4/30", Name: "exploited", Score: 4},
		{Match: "127.0.0.10/31", Name: "ten", Score: 1},
	}}
}

// TestZoneIdentityRBLDNSD: a list answered from the zone in memory says
// exactly what the same list says over DNS from rbldnsd serving the same
// zone file: status, A values, symbols, TXT reason, and why an answer is
// unknown.
func TestZoneIdentityRBLDNSD(t *testing.T) {
	srv := testsvc.StartRBLDNSD(t, testsvc.RBLZone{Name: "bl.test", Type: "ip4set", Data: identityZone})
	set, err := zone.ReadBytes([]byte(identityZone), zone.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	z := &Zone{name: "bl.test"}
	z.cur.Store(&servedZone{info: ZoneInfo{Version: 1}, set: set})
	checker := func(local rbl.Local, resolver string) *rbl.Checker {
		l := identityList()
		l.Local = local
		c, err := rbl.NewChecker(rbl.Config{Resolvers: []string{resolver}, Lists: []rbl.List{l}, HealthInterval: -1,
			LookupNonPublic: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, BackoffAfter: 1 << 20, CacheSize: 1 << 16,
			QueryTimeout: 2 * time.Second, ListTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	viaDNS := checker(nil, srv.Addr)
	fromMem := checker(z, "127.0.0.1:9") // nothing listens: only memory answers

	ips := []string{"127.0.0.1", "127.0.0.2", "192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.0",
		"198.51.100.6", "198.51.100.7", "198.51.100.8", "198.51.100.255", "198.51.101.0", "203.0.113.4", "203.0.113.5",
		"203.0.113.7", "203.0.113.9", "203.0.113.10", "203.0.113.199", "203.0.113.200", "203.0.113.255", "11.1.0.0",
		"11.1.255.255", "11.0.255.255", "11.2.3.4", "11.2.4.4", "12.9.9.9", "13.0.0.1", "13.0.0.2", "13.0.0.3", "13.0.0.4",
		"13.0.0.5", "13.0.0.6", "13.0.0.7", "192.0.2.66", "192.0.2.67", "192.0.2.68", "14.0.0.1", "14.1.0.1", "14.1.2.3",
		"14.2.0.0", "15.0.0.0", "15.0.0.1", "15.0.0.2",
		"16.0.0.0", "17.255.255.255", "18.0.0.0", "18.1.1.1", "18.1.1.2", "18.1.1.3", "18.1.1.4", "18.1.1.5", "18.1.1.6",
		"18.1.2.1", "18.1.3.255", "18.1.4.0"}
	rng := rand.New(rand.NewPCG(20, 26))
	for range 200 { // random addresses in and around the zone's blocks
		base := []uint32{0x0b000000, 0x0c000000, 0x0e000000, 0xc6336400, 0xcb007100}[rng.IntN(5)]
		v := base + rng.Uint32N(1<<17)
		ips = append(ips, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String())
	}
	ctx := context.Background()
	listed := 0
	for _, ip := range ips {
		d, m := viaDNS.Lookup(ctx, "bl", ip), fromMem.Lookup(ctx, "bl", ip)
		if !m.Local || d.Local {
			t.Fatalf("%s: answered locally: dns %v, memory %v", ip, d.Local, m.Local)
		}
		if got, want := describe(m), describe(d); got != want {
			t.Errorf("%s:\n memory %s\n rbldnsd %s", ip, got, want)
		}
		if d.Status == rbl.Listed {
			listed++
		}
	}
	if listed < 50 {
		t.Fatalf("only %d of %d addresses listed: the comparison says little", listed, len(ips))
	}
}

// describe is what must be identical between the two paths.
func describe(a rbl.Answer) string {
	var codes, syms []string
	for _, c := range a.Codes {
		codes = append(codes, c.String())
	}
	for _, s := range a.Symbols {
		syms = append(syms, fmt.Sprintf("%s=%g", s.Name, s.Score))
	}
	slices.Sort(codes)
	slices.Sort(syms)
	why := ""
	for _, e := range []error{rbl.ErrQueryRefused, rbl.ErrBadAnswer, rbl.ErrUndefinedCode} {
		if errors.Is(a.Err, e) {
			why = e.Error()
		}
	}
	if a.Status == rbl.Unknown && why == "" {
		why = fmt.Sprint("other: ", a.Err)
	}
	return fmt.Sprintf("%s codes=%v symbols=%v reason=%q err=%s", a.Status, codes, syms, a.Reason, why)
}
