package fleet_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/rbl"
)

// ExamplePublishZone publishes a DNS list zone and has a node answer the
// list from memory: the resolver given to the checker is unreachable and
// never needed.
func ExamplePublishZone() {
	dir, err := os.MkdirTemp("", "fleet-zone-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	js, stop := exampleJetStream(dir)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A node serving the zone bl.example from memory.
	zones := fleet.NewZones(fleet.ZonesConfig{JetStream: js})
	z, err := zones.Zone("bl.example")
	if err != nil {
		panic(err)
	}
	go zones.Run(ctx)
	c, err := rbl.NewChecker(rbl.Config{
		Resolvers: []string{"127.0.0.1:9"}, HealthInterval: -1, LookupNonPublic: rbl.TestNetworks(),
		Lists: []rbl.List{{Name: "bl", Zone: "bl.example", Local: z, RequireLocal: true,
			Codes: []rbl.Code{{Match: "127.0.0.2", Name: "spam", Score: 4}}}},
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println("ready before:", c.Ready() == nil)

	// The publisher (rulecheck publish-zone parses it first).
	zi, err := fleet.PublishZone(ctx, js, fleet.Bucket{}, fleet.ZonePublication{
		Zone: "bl.example", Data: strings.NewReader(":127.0.0.2:spam from $\n192.0.2.0/24\n!192.0.2.1\n")})
	if err != nil {
		panic(err)
	}
	for z.Served() == nil {
		select {
		case <-zones.Changed():
		case <-time.After(time.Minute):
			panic("zone not loaded")
		}
	}
	fmt.Println("published:", zi.Version, "served:", z.Served().Version, "ready:", c.Ready() == nil)
	for _, ip := range []string{"192.0.2.7", "192.0.2.1"} {
		a := c.Lookup(ctx, "bl", ip)
		fmt.Println(ip, a.Status, a.Local, a.Reason)
	}
	// Output:
	// ready before: false
	// published: 1 served: 1 ready: true
	// 192.0.2.7 listed true spam from 192.0.2.7
	// 192.0.2.1 not-listed true
}
