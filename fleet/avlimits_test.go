package fleet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/scanner"
)

func avKeyOf(i int, version string) scanner.CacheKey {
	return scanner.CacheKey{Sum: sha256.Sum256([]byte(fmt.Sprint(i))), Engine: "clamd-1", Version: version}
}

// Values beyond the limits are neither written nor believed, and an
// entry never answers for another engine or version.
func TestAVValueLimits(t *testing.T) {
	k := avKeyOf(1, "v1")
	many := make([]string, MaxAVSignatures+1)
	for i := range many {
		many[i] = fmt.Sprint("Sig.", i)
	}
	if _, err := encodeAV(k, scanner.Result{Signatures: many}); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("%d signatures: %v, want ErrValueTooLarge", len(many), err)
	}
	if _, err := encodeAV(k, scanner.Result{Signatures: []string{strings.Repeat("x", MaxAVValueBytes)}}); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("a long signature: %v, want ErrValueTooLarge", err)
	}
	data, err := encodeAV(k, scanner.Result{Signatures: []string{"Eicar-Test-Signature"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := decodeAV(k, data); err != nil || len(r.Signatures) != 1 {
		t.Fatalf("round trip: %v, %v", r, err)
	}
	for _, other := range []scanner.CacheKey{avKeyOf(1, "v2"), {Sum: k.Sum, Engine: "clamd-2", Version: "v1"}} {
		if _, err := decodeAV(other, data); !errors.Is(err, ErrValue) {
			t.Fatalf("entry of %v read for %v: %v, want ErrValue", k, other, err)
		}
	}
	if _, err := decodeAV(k, []byte(`{"e":"clamd-1","v":"v1","s":[""]}`)); !errors.Is(err, ErrValue) {
		t.Fatalf("empty signature name: %v", err)
	}
	if _, err := decodeAV(k, make([]byte, MaxAVValueBytes+1)); !errors.Is(err, ErrValue) {
		t.Fatalf("oversized value: %v", err)
	}
	if avKey(k) == avKey(avKeyOf(1, "v2")) || !strings.HasPrefix(avKey(k), versionToken("clamd-1", "v1")+".") {
		t.Fatalf("keys: %s %s", avKey(k), avKey(avKeyOf(1, "v2")))
	}
}

func TestRatesValueLimits(t *testing.T) {
	for name, v := range map[string]string{
		"other node":   `{"node":"b","counts":[]}`,
		"hits > scans": `{"node":"a","counts":[{"e":"c","v":"1","s":1,"h":2}]}`,
		"negative":     `{"node":"a","counts":[{"e":"c","v":"1","s":-1,"h":0}]}`,
		"no engine":    `{"node":"a","counts":[{"e":"","v":"1","s":1,"h":0}]}`,
		"twice":        `{"node":"a","counts":[{"e":"c","v":"1","s":1,"h":0},{"e":"c","v":"1","s":1,"h":0}]}`,
		"long version": `{"node":"a","counts":[{"e":"c","v":"` + strings.Repeat("v", maxName+1) + `","s":1,"h":0}]}`,
		"too many":     `{"node":"a","counts":[` + strings.Repeat(`{"e":"c","v":"1","s":1,"h":0},`, MaxRateEntries) + `{"e":"c","v":"1","s":1,"h":0}]}`,
		"not json":     `counts`,
	} {
		if _, err := decodeRates("a", []byte(v)); !errors.Is(err, ErrValue) {
			t.Errorf("%s: %v, want ErrValue", name, err)
		}
	}
	if _, err := decodeRates("a", make([]byte, MaxRatesBytes+1)); !errors.Is(err, ErrValue) {
		t.Errorf("oversized: %v", err)
	}
	c, err := decodeRates("a", []byte(`{"node":"a","counts":[{"e":"c","v":"1","s":5,"h":2}]}`))
	if err != nil || c[rateKey{"c", "1"}] != (rateCount{5, 2}) {
		t.Fatalf("%v, %v", c, err)
	}
}

// A full bucket drops its oldest entries instead of refusing new ones,
// and Forget drops one version's entries.
func TestAVCacheBounded(t *testing.T) {
	n := natstest.Start(t)
	js := connect(t, n.URL)
	c, err := NewAVCache(AVCacheConfig{JetStream: js, MaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const entries = 400 // ~200 bytes each on the stream: 5 times MaxBytes
	for i := range entries {
		if err := c.Put(ctx, avKeyOf(i, "v1"), scanner.Result{Signatures: []string{"Sig.A"}}); err != nil {
			t.Fatalf("put %d into a full bucket: %v", i, err)
		}
	}
	if _, ok, err := c.Get(ctx, avKeyOf(0, "v1")); ok || err != nil {
		t.Fatalf("the oldest entry: %v %v, want it dropped", ok, err)
	}
	if r, ok, err := c.Get(ctx, avKeyOf(entries-1, "v1")); !ok || err != nil || r.Signatures[0] != "Sig.A" {
		t.Fatalf("the newest entry: %v %v %v", r, ok, err)
	}
	s, err := js.Stream(ctx, "KV_"+AVCacheBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Bytes > 16<<10 {
		t.Fatalf("bucket holds %d bytes, over its 16 KiB: %v", info.State.Bytes, err)
	}
	if err := c.Put(ctx, avKeyOf(1, "v2"), scanner.Result{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Forget(ctx, "clamd-1", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(ctx, avKeyOf(entries-1, "v1")); ok {
		t.Fatal("v1 entry survived Forget")
	}
	if _, ok, _ := c.Get(ctx, avKeyOf(1, "v2")); !ok {
		t.Fatal("v2 entry lost to Forget of v1")
	}
}

// A node's counts stop counting once it is silent for TTL, and a node
// keeps counts for its newest MaxVersions versions per engine only.
func TestAVGuardExpiryAndVersions(t *testing.T) {
	n := natstest.Start(t)
	mk := func(node string) (*AVGuard, context.CancelFunc, chan struct{}) {
		g, err := NewAVGuard(AVGuardConfig{JetStream: connect(t, n.URL), Node: node, Interval: 50 * time.Millisecond, TTL: 300 * time.Millisecond, MaxVersions: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); g.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return g, cancel, done
	}
	a, _, _ := mk("a")
	b, stopB, doneB := mk("b")
	for range 10 {
		b.Record("clamd-1", "v1", true)
	}
	a.Record("clamd-1", "v1", false)
	waitFor(t, 10*time.Second, func() bool { r, _ := a.Rate("clamd-1", "v1"); return r.Scans == 11 && r.Hits == 10 && r.Nodes == 2 }, "b's counts at a")
	stopB()
	<-doneB
	waitFor(t, 10*time.Second, func() bool { r, _ := a.Rate("clamd-1", "v1"); return r.Scans == 1 && r.Nodes == 1 }, "b's counts aging out at a")

	for _, v := range []string{"v2", "v3"} {
		a.Record("clamd-1", v, true)
	}
	if r, ok := a.Rate("clamd-1", "v1"); ok {
		t.Fatalf("v1 kept beyond MaxVersions 2: %+v", r)
	}
	if r, ok := a.Rate("clamd-1", "v3"); !ok || r.Scans != 1 {
		t.Fatalf("v3: %+v %v", r, ok)
	}
	if _, err := NewAVGuard(AVGuardConfig{JetStream: connect(t, n.URL), Node: "a.b"}); err == nil {
		t.Fatal("a node id with a dot accepted")
	}
}

// The guard keeps at most MaxNodes other nodes' counts and MaxRateEntries
// of its own.
func TestAVGuardBounds(t *testing.T) {
	g, err := NewAVGuard(AVGuardConfig{JetStream: struct{ jetstream.JetStream }{}, Node: "a", MaxNodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		g.apply(fmt.Sprint("n", i), map[rateKey]rateCount{{"clamd-1", "v1"}: {scans: 10, hits: 1}})
	}
	if r, _ := g.Rate("clamd-1", "v1"); r.Nodes != 3 || r.Scans != 30 {
		t.Fatalf("%+v, want 3 nodes' counts", r)
	}
	g.apply("n0", nil) // a node gone makes room
	g.apply("n4", map[rateKey]rateCount{{"clamd-1", "v1"}: {scans: 5, hits: 5}})
	if r, _ := g.Rate("clamd-1", "v1"); r.Nodes != 3 || r.Scans != 25 || r.Hits != 7 {
		t.Fatalf("%+v after n0 left and n4 came", r)
	}
	for i := range MaxRateEntries + 10 {
		g.Record(fmt.Sprint("engine-", i), "v1", true)
	}
	if len(g.own) != MaxRateEntries {
		t.Fatalf("%d own counts, want %d", len(g.own), MaxRateEntries)
	}
	g.Record(strings.Repeat("e", maxName+1), "v1", true)
	if _, ok := g.Rate(strings.Repeat("e", maxName+1), "v1"); ok {
		t.Fatal("an over-long engine name counted")
	}
}
