package config

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

func TestRulesSource(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"rules: {source: nats}\n", "rules: source nats needs fleet.url"},
		{"rules: {source: git}\n", `rules: source "git": want files or nats`},
		{"rules: {source: nats}\nfleet: {url: \"nats://127.0.0.1:4222\", node: gw-1, status_interval: 2s}\n", ""},
	} {
		c, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil {
			err = c.Check()
		}
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.err)
		}
	}
}

func TestZonesCheck(t *testing.T) {
	const fleetURL = "fleet: {url: \"nats://127.0.0.1:4222\"}\n"
	for _, tc := range []struct{ yaml, err string }{
		{"dns: {resolvers: [127.0.0.1:53], dnsbl: [bl.test], zones: {source: nats, lists: [bl.test]}}\n", "source nats needs fleet.url"},
		{"dns: {zones: {lists: [bl.test]}}\n", "lists need a source"},
		{"dns: {zones: {source: file, lists: [bl.test]}}\n" + fleetURL, `source "file": want nats`},
		{"dns: {resolvers: [127.0.0.1:53], dnsbl: [bl.test], zones: {source: nats}}\n" + fleetURL, "names no lists"},
		{"dns: {resolvers: [127.0.0.1:53], dnsbl: [bl.test], zones: {source: nats, lists: [other.test]}}\n" + fleetURL, `"other.test" is not the zone of a dnsbl list`},
		{"dns: {resolvers: [127.0.0.1:53], dnsbl: [bl.test], zones: {source: nats, lists: [bl.test], until_loaded: never}}\n" + fleetURL, "until_loaded"},
		{"dns: {resolvers: [127.0.0.1:53], dnsbl: [bl.test], zones: {source: nats, lists: [BL.test]}}\n" + fleetURL, "lower-case"},
		{"dns: {resolvers: [127.0.0.1:53], dnsbl: [zen, bl.test=3], zones: {source: nats, lists: [zen.spamhaus.org, bl.test], until_loaded: dns}}\n" + fleetURL, ""},
	} {
		c, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil {
			err = c.Check()
		}
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.err)
		}
	}
}

// dns.zones source nats: the list's filter is not ready until its zone
// is loaded, then answers from memory (the resolver is unreachable).
func TestBuildZones(t *testing.T) {
	n := natstest.Start(t)
	c, err := Parse("z.yaml", []byte(`
fleet: {url: "`+n.URL+`"}
dns:
  resolvers: [127.0.0.1:9]
  dnsbl: [bl.test=4]
  lookup_non_public: [192.0.2.0/24, 127.0.0.0/8]
  zones: {source: nats, lists: [bl.test]}
`))
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := buildFilters(ctx, c, Options{}, filter.SpoolConfig{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.FleetZones == nil {
		t.Fatal("no FleetZones")
	}
	if err := f.Lists.Ready(); !errors.Is(err, filter.ErrNotReady) || !strings.Contains(err.Error(), "bl.test") {
		t.Fatalf("lists ready before their zone: %v", err)
	}
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := fleet.PublishZone(ctx, js, fleet.Bucket{}, fleet.ZonePublication{Zone: "bl.test", Data: strings.NewReader("192.0.2.1\n")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for f.Lists.Ready() != nil {
		select {
		case <-f.FleetZones.Changed():
		case <-time.After(100 * time.Millisecond): // the DNS lists' first health round ends on its own
		case <-deadline:
			t.Fatalf("not ready 30 s after publishing: %v", f.Lists.Ready())
		}
	}
	tx := f.Pipeline.Begin(filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1")})
	defer tx.Close()
	if v := tx.Connect(ctx); v.Score != 4 || len(v.Symbols) != 1 || v.Symbols[0].Name != "RBL_BL_TEST" {
		t.Fatalf("connect verdict %+v, want RBL_BL_TEST from the zone", v)
	}
}
