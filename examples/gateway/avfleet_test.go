package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/icap"
)

// av.fleet.cache across three gateway processes on a 3-node NATS
// cluster over a real c-icap (its ISTag is the signature version): an
// attachment mailed to each is scanned by the first one only; the other
// two take its answer from the shared cache.
func TestFleetAVCache(t *testing.T) {
	buildBinary(t)
	srv := testsvc.SharedICAP(t)
	c := natstest.StartCluster(t, 3)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	ic, err := icap.New(icap.Config{URL: srv.URL, Name: "icap-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	istag, err := ic.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	att := bytes.Repeat([]byte("quarter;revenue;all clean\n"), 800)
	key := scanner.CacheKey{Sum: sha256.Sum256(att), Engine: "icap-1", Version: istag}

	dir := t.TempDir()
	var gws []*proc
	var caches []*fleet.AVCache
	for i, n := range c.Nodes {
		name := fmt.Sprintf("gw-%d", i+1)
		conf := writeFile(t, dir, name+".yaml", fmt.Sprintf("av: {icap: [%q], fleet: {cache: true, guard: true, cache_timeout: 10s}}\n"+
			"fleet: {url: %q, node: %s, replicas: 3}\nrules: {spamassassin: \"\"}\n", srv.URL, n.URL, name))
		gws = append(gws, startGateway(t, gatewayArgs(t, sink.Addr, "-config", conf)...))
		nc, err := nats.Connect(n.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ac, _ := fleet.NewAVCache(fleet.AVCacheConfig{JetStream: js})
		caches = append(caches, ac)
	}
	for i, g := range gws {
		if i > 0 {
			// The entry on this gateway's own NATS server first: a get is
			// answered by the local replica, which may trail the put.
			deadline := time.Now().Add(20 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				_, ok, _ := caches[i].Get(ctx, key)
				cancel()
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the shared entry never reached NATS node %d; gateway 1:\n%s\n%s", i+1,
						grepLines(httpGet(t, "http://"+gws[0].admin+"/metrics", 200), "scanner"), gws[0].output())
				}
				time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
			}
		}
		r := send(g.smtp, mimeMessage(fmt.Sprintf("figures %d", i), attachment("figures.csv", "text/csv", att)))
		if r.code != 250 {
			t.Fatalf("gateway %d: %+v", i+1, r)
		}
	}
	if got := sink.Wait(3, 30*time.Second); len(got) != 3 {
		t.Fatalf("%d messages relayed, want 3", len(got))
	}
	for i, g := range gws {
		m := httpGet(t, "http://"+g.admin+"/metrics", 200)
		hit := strings.Contains(m, `portcullis_scanner_shared_cache_hits_total{engine="icap-1"} 1`)
		if hit != (i > 0) {
			t.Errorf("gateway %d: shared cache hit %v, want %v:\n%s", i+1, hit, i > 0, grepLines(m, "shared_cache"))
		}
		if !strings.Contains(m, "portcullis_scanner_shared_cache_up 1") {
			t.Errorf("gateway %d: shared cache not up:\n%s", i+1, grepLines(m, "shared_cache"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
