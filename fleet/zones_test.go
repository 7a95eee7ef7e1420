package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet/zone"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/rbl"
)

// countingDNS answers NXDOMAIN to everything and counts the queries.
type countingDNS struct {
	Addr    string
	queries atomic.Int64
}

func startCountingDNS(t *testing.T) *countingDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingDNS{Addr: pc.LocalAddr().String()}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		c.queries.Add(1)
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		wg.Wait()
	})
	return c
}

// waitZones waits for the next install or refusal.
func waitZones(t *testing.T, zs *Zones) {
	t.Helper()
	select {
	case <-zs.Changed():
	case <-time.After(30 * time.Second):
		t.Fatal("no zone install or refusal within 30 s")
	}
}

// waitVersion waits until z has handled version v (installed or refused).
func waitVersion(t *testing.T, zs *Zones, z *Zone, v uint64) {
	t.Helper()
	for z.handled.Load() < v {
		waitZones(t, zs)
	}
}

// node is one gateway's zones and DNS lists.
type node struct {
	zs   *Zones
	z    *Zone
	c    *rbl.Checker
	done chan error
}

func startNode(t *testing.T, ctx context.Context, js jetstream.JetStream, resolver string, cfg ZonesConfig) *node {
	t.Helper()
	cfg.JetStream = js
	zs := NewZones(cfg)
	z, err := zs.Zone("bl.test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rbl.NewChecker(rbl.Config{Resolvers: []string{resolver}, HealthInterval: -1, LookupNonPublic: rbl.TestNetworks(),
		Lists: []rbl.List{{Name: "bl", Zone: "bl.test", Local: z, RequireLocal: true, Codes: []rbl.Code{
			{Match: "127.0.0.2", Name: "spam", Score: 4}, {Match: "127.0.0.3", Name: "snowshoe", Score: 3}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n := &node{zs: zs, z: z, c: c, done: make(chan error, 1)}
	go func() { n.done <- zs.Run(ctx) }()
	return n
}

// bigZone is a zone of n /32 entries from 11.0.0.0 and one listing of
// 192.0.2.1 with code 127.0.0.<code>: over the object store's 128 KiB
// chunk for n in the thousands.
func bigZone(n, code int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ":127.0.0.%d:listed $\n192.0.2.1\n", code)
	for i := range n {
		fmt.Fprintf(&b, "11.%d.%d.%d\n", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return b.Bytes()
}

func publishZone(t *testing.T, js jetstream.JetStream, data []byte) *ZoneInfo {
	t.Helper()
	zi, err := PublishZone(context.Background(), js, Bucket{Replicas: 3}, ZonePublication{Zone: "bl.test", Data: bytes.NewReader(data), Publisher: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return zi
}

func TestZonesCluster(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dnsSrv := startCountingDNS(t)
	var js []jetstream.JetStream
	for _, n := range cl.Nodes {
		js = append(js, connect(t, n.URL))
	}

	// v1 published before the nodes start; 20,000 entries, about 230 KiB:
	// two chunks of the object store.
	v1data := bigZone(20000, 2)
	v1 := publishZone(t, js[0], v1data)
	if v1.Size != int64(len(v1data)) || v1.Size <= 128<<10 {
		t.Fatalf("manifest %+v for %d bytes", v1, len(v1data))
	}
	var nodes []*node
	for i := range 3 {
		n := startNode(t, ctx, js[i], dnsSrv.Addr, ZonesConfig{Bucket: Bucket{Replicas: 3}})
		if err := n.c.Ready(); !errors.Is(err, filter.ErrNotReady) || !errors.Is(n.z.Ready(), ErrZoneNotReady) {
			t.Fatalf("node %d ready before loading the zone: %v", i, err)
		}
		nodes = append(nodes, n)
	}
	check := func(v uint64, code string) {
		t.Helper()
		before := dnsSrv.queries.Load()
		for i, n := range nodes {
			waitVersion(t, n.zs, n.z, v)
			if err := n.c.Ready(); err != nil {
				t.Fatalf("node %d not ready at version %d: %v", i, v, err)
			}
			for ip, want := range map[string]string{"192.0.2.1": code, "11.0.1.7": code, "11.1.0.1": "", "192.0.2.2": ""} {
				a := n.c.Lookup(ctx, "bl", ip)
				if !a.Local || (want == "") != (a.Status == rbl.NotListed) || (want != "" && (a.Status != rbl.Listed || a.Codes[0].String() != want)) {
					t.Fatalf("node %d, version %d: %s = %s local=%v %v %v, want %q (serving %+v, refused %+v, status %+v)",
						i, v, ip, a.Status, a.Local, a.Codes, a.Err, want, n.z.Served(), n.z.Refused(), n.zs.Status())
				}
			}
			if want := "listed 192.0.2.1"; !strings.Contains(n.c.Lookup(ctx, "bl", "192.0.2.1").Reason, want) {
				t.Fatalf("node %d: reason, want %q", i, want)
			}
		}
		if q := dnsSrv.queries.Load() - before; q != 0 {
			t.Fatalf("%d DNS queries with the zone in memory, want 0", q)
		}
	}
	check(v1.Version, "127.0.0.2")

	// A broken version: refused on every node, v1 kept, still ready.
	bad := publishZone(t, js[1], []byte("192.0.2.1\n192.0.2.300\n"))
	for i, n := range nodes {
		waitVersion(t, n.zs, n.z, bad.Version)
		ref := n.z.Refused()
		if s := n.z.Served(); s == nil || s.Version != v1.Version || ref == nil || ref.Version != bad.Version || !strings.Contains(ref.Reason, "line 2") {
			t.Fatalf("node %d after a broken zone: served %+v refused %+v", i, s, ref)
		}
		st := n.zs.Status()
		if len(st) != 1 || st[0].Version != v1.Version || st[0].Entries != 20001 || st[0].Refused == nil {
			t.Fatalf("node %d status %+v", i, st)
		}
	}
	check(v1.Version, "127.0.0.2")

	// A fixed version with another code: every node converges.
	v3 := publishZone(t, js[2], bigZone(20000, 3))
	check(v3.Version, "127.0.0.3")
	for i, n := range nodes {
		if n.z.Refused() != nil {
			t.Fatalf("node %d still reports the refusal after a newer version: %+v", i, n.z.Refused())
		}
	}

	// A fourth node started after publication is not ready until it has
	// the zone, and the DNS fallback answers nothing meanwhile that the
	// test would take for the zone's.
	late := startNode(t, ctx, connect(t, cl.URLs()), dnsSrv.Addr, ZonesConfig{Bucket: Bucket{Replicas: 3}})
	if err := late.c.Ready(); !errors.Is(err, filter.ErrNotReady) {
		t.Fatalf("late node ready at once: %v", err)
	}
	nodes = append(nodes, late)
	check(v3.Version, "127.0.0.3")

	// Old objects are collected: the current one and the previous one stay.
	_, obs, err := zoneStores(ctx, js[0], Bucket{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := obs.List(ctx)
	if err != nil || len(objs) != 2 {
		t.Fatalf("objects after 3 publications: %d %v", len(objs), err)
	}
	cancel()
	for _, n := range nodes {
		if err := <-n.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	}
}

func TestZoneLimits(t *testing.T) {
	n := natstest.Start(t)
	js := connect(t, n.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := bigZone(200, 2) // about 2 KiB

	// At publication: a typed error, nothing published.
	_, err := PublishZone(ctx, js, Bucket{}, ZonePublication{Zone: "bl.test", Data: bytes.NewReader(data), MaxBytes: 1024})
	var le *ZoneLimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrZoneTooLarge) || le.Limit != 1024 {
		t.Fatalf("PublishZone over MaxBytes = %v", err)
	}
	if _, err := CurrentZone(ctx, js, Bucket{}, "bl.test"); !errors.Is(err, ErrNoZone) {
		t.Fatalf("CurrentZone after a refused publication = %v", err)
	}
	if _, err := PublishZone(ctx, js, Bucket{}, ZonePublication{Zone: "BL..test", Data: bytes.NewReader(data)}); !errors.Is(err, ErrZoneName) {
		t.Fatalf("PublishZone of a bad name = %v", err)
	}

	// On a node: over its byte limit, then over its entry limit.
	dnsSrv := startCountingDNS(t)
	small := startNode(t, ctx, js, dnsSrv.Addr, ZonesConfig{MaxBytes: 1024})
	few := startNode(t, ctx, js, dnsSrv.Addr, ZonesConfig{Limits: zone.Limits{MaxEntries: 100}})
	zi, err := PublishZone(ctx, js, Bucket{}, ZonePublication{Zone: "bl.test", Data: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := CurrentZone(ctx, js, Bucket{}, "bl.test"); err != nil || cur.Version != zi.Version || cur.Digest != zi.Digest {
		t.Fatalf("CurrentZone = %+v %v, want %+v", cur, err, zi)
	}
	for _, tc := range []struct {
		n    *node
		want string
	}{{small, "more than 1024 bytes"}, {few, "more than 100 entries"}} {
		waitVersion(t, tc.n.zs, tc.n.z, zi.Version)
		ref := tc.n.z.Refused()
		if ref == nil || !strings.Contains(ref.Reason, tc.want) || tc.n.z.Served() != nil {
			t.Fatalf("refusal %+v, want %q", ref, tc.want)
		}
		if err := tc.n.c.Ready(); !errors.Is(err, filter.ErrNotReady) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Ready of a node that refused its only version = %v", err)
		}
	}

	// A manifest whose object does not match is refused, not retried.
	kv, _, err := zoneStores(ctx, js, Bucket{})
	if err != nil {
		t.Fatal(err)
	}
	forged := *zi
	forged.Digest = "sha256:" + strings.Repeat("0", 64)
	b, _ := json.Marshal(forged)
	rev, err := kv.Put(ctx, "bl.test", b)
	if err != nil {
		t.Fatal(err)
	}
	ok := startNode(t, ctx, js, dnsSrv.Addr, ZonesConfig{})
	waitVersion(t, ok.zs, ok.z, rev)
	if ref := ok.z.Refused(); ref == nil || ref.Version != rev || !strings.Contains(ref.Reason, "manifest says") {
		t.Fatalf("forged digest: refusal %+v", ref)
	}
}

// A version whose object cannot be fetched is not a refusal: the node
// says it is loading it and fetches again until the object is there.
func TestZoneFetchRetry(t *testing.T) {
	n := natstest.Start(t)
	js := connect(t, n.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dnsSrv := startCountingDNS(t)
	data := []byte("192.0.2.1\n")
	sum := sha256.Sum256(data)
	zi := ZoneInfo{Zone: "bl.test", Object: "bl.test/late", Size: int64(len(data)), Digest: "sha256:" + hex.EncodeToString(sum[:])}
	kv, obs, err := zoneStores(ctx, js, Bucket{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(zi)
	rev, err := kv.Put(ctx, "bl.test", b)
	if err != nil {
		t.Fatal(err)
	}
	node := startNode(t, ctx, js, dnsSrv.Addr, ZonesConfig{Retry: 50 * time.Millisecond})
	waitZones(t, node.zs) // the first failed fetch
	if err := node.z.Ready(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("loading version %d", rev)) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Ready while the object is missing = %v", err)
	}
	if node.z.Refused() != nil {
		t.Fatalf("a missing object was refused: %+v", node.z.Refused())
	}
	if _, err := obs.PutBytes(ctx, "bl.test/late", data); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, node.zs, node.z, rev)
	if s := node.z.Served(); s == nil || s.Version != rev || node.c.Ready() != nil {
		t.Fatalf("after the object arrived: served %+v ready %v", s, node.c.Ready())
	}
}

// A NATS server killed while a zone is published: the publication is
// retried on the survivors and every node, reconnecting, converges.
func TestZonesServerKilled(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dnsSrv := startCountingDNS(t)
	connectAll := func() jetstream.JetStream {
		t.Helper()
		nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	pub := connectAll()
	publish := func(data []byte) uint64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			zi, err := PublishZone(pctx, pub, Bucket{Replicas: 3}, ZonePublication{Zone: "bl.test", Data: bytes.NewReader(data)})
			pcancel()
			if err == nil {
				return zi.Version
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish: %v", err)
			}
			t.Logf("publish: %v; again", err)
		}
	}
	v1 := publish(bigZone(20000, 2))
	var nodes []*node
	for range 3 {
		n := startNode(t, ctx, connectAll(), dnsSrv.Addr, ZonesConfig{Bucket: Bucket{Replicas: 3}, Retry: 100 * time.Millisecond, Resync: 200 * time.Millisecond})
		waitVersion(t, n.zs, n.z, v1)
		nodes = append(nodes, n)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cl.Nodes[0].Stop() }()
	start := time.Now()
	v2 := publish(bigZone(20000, 3))
	wg.Wait()
	t.Logf("published in %v", time.Since(start))
	for i, n := range nodes {
		waitVersion(t, n.zs, n.z, v2)
		t.Logf("node %d converged after %v", i, time.Since(start))
		if s := n.z.Served(); s == nil || s.Version != v2 || n.c.Ready() != nil {
			t.Fatalf("node %d after the kill: served %+v, ready %v", i, s, n.c.Ready())
		}
		if a := n.c.Lookup(ctx, "bl", "192.0.2.1"); !a.Local || a.Status != rbl.Listed || a.Codes[0].String() != "127.0.0.3" {
			t.Fatalf("node %d: %+v", i, a)
		}
	}
	if q := dnsSrv.queries.Load(); q != 0 {
		t.Fatalf("%d DNS queries", q)
	}
}
