package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// zoneReadyz returns /readyz's status and the zone versions header.
func zoneReadyz(t *testing.T, g *proc) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Portcullis-Zone-Versions")
}

// A gateway answering a dnsbl list from the fleet's zone: not ready
// (451, /readyz 503) until the zone is loaded, then a client the zone
// lists is refused with DNS unreachable; a broken zone is refused and
// the fleet status says so while the node keeps serving.
func TestFleetZones(t *testing.T) {
	buildBinary(t)
	n := natstest.Start(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	conf := writeFile(t, t.TempDir(), "z.yaml", fmt.Sprintf(`fleet: {url: %q, node: gw-z, status_interval: 300ms}
dns:
  resolvers: [127.0.0.1:9]
  dnsbl: [bl.test=20]
  lookup_non_public: [127.0.0.0/8]
  zones: {source: nats, lists: [bl.test]}
`, n.URL))
	g := startGateway(t, gatewayArgs(t, sink.Addr, "-config", conf)...)
	if code, v := zoneReadyz(t, g); code != 503 || v != "bl.test=none" {
		t.Fatalf("before the zone: /readyz %d zones %q", code, v)
	}
	if r := send(g.smtp, message("too early", "hi")); r.code != 451 {
		t.Fatalf("mail before the zone: %+v, want 451", r)
	}
	publish := func(data string) uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		zi, err := fleet.PublishZone(ctx, js, fleet.Bucket{}, fleet.ZonePublication{Zone: "bl.test", Data: strings.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		return zi.Version
	}
	v1 := publish("127.0.0.2 :2:listed in the zone\n")
	if _, ok := g.waitLine(fmt.Sprintf("fleet: zone installed\" zone=bl.test version=%d ", v1), 30*time.Second); !ok {
		t.Fatalf("zone not installed:\n%s", g.output())
	}
	if code, v := zoneReadyz(t, g); code != 200 || v != fmt.Sprintf("bl.test=%d", v1) {
		t.Fatalf("after the zone: /readyz %d zones %q", code, v)
	}
	listed := sendFrom(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, g.smtp, "a@example.org", []string{"b@example.net"}, message("listed", "hi"))
	if listed.code < 500 {
		t.Fatalf("client listed in the zone: %+v, want a 5xx", listed)
	}
	clean := sendFrom(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, g.smtp, "a@example.org", []string{"b@example.net"}, message("clean", "hi"))
	if clean.code != 250 {
		t.Fatalf("client not in the zone: %+v", clean)
	}

	v2 := publish("127.0.0.2\n127.0.0.300\n")
	if _, ok := g.waitLine(fmt.Sprintf("fleet: zone refused, keeping the current one\" zone=bl.test version=%d ", v2), 30*time.Second); !ok {
		t.Fatalf("broken zone not refused:\n%s", g.output())
	}
	if code, _ := zoneReadyz(t, g); code != 200 {
		t.Fatalf("a refused zone made the node unready: %d", code)
	}
	out := fleetStatusUntil(t, n.URL, func(out string) bool {
		return strings.Contains(out, fmt.Sprintf("bl.test=%d", v1)) && strings.Contains(out, fmt.Sprintf("zone bl.test refused version %d: zone: line 2", v2)) &&
			strings.Contains(out, fmt.Sprintf("published zone bl.test: version %d", v2))
	})
	t.Logf("gateway fleet status:\n%s", out)
}
