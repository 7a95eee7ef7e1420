package zone_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portcullis-mail/portcullis/fleet/zone"
)

// Example loads an rbldnsd ip4set zone and answers from memory.
func Example() {
	z := ":127.0.0.2:listed, see https://dnsbl.example/$\n192.0.2.0/24\n!192.0.2.1\n"
	s, err := zone.Read(strings.NewReader(z), zone.Limits{})
	if err != nil {
		panic(err)
	}
	for _, ip := range []string{"192.0.2.9", "192.0.2.1", "198.51.100.1"} {
		a, listed := s.Lookup(netip.MustParseAddr(ip))
		if !listed {
			fmt.Println(ip, "not listed")
			continue
		}
		fmt.Println(ip, a.A, a.TXT)
	}
	// Output:
	// 192.0.2.9 127.0.0.2 listed, see https://dnsbl.example/192.0.2.9
	// 192.0.2.1 not listed
	// 198.51.100.1 not listed
}
