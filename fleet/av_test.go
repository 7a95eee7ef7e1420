package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
)

// counted wraps a real clamd: it counts every scan by the SHA-256 of the
// bytes, and reports the signature version the test sets (the test
// clamd's database has none).
type counted struct {
	*clamd.Client
	version *atomic.Value
	mu      *sync.Mutex
	scans   map[[32]byte]int
}

func (c counted) Scan(ctx context.Context, r io.Reader) (scanner.Result, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return scanner.Result{}, err
	}
	c.mu.Lock()
	c.scans[sha256.Sum256(b)]++
	c.mu.Unlock()
	return c.Client.Scan(ctx, bytes.NewReader(b))
}

func (c counted) Version(context.Context) (string, error) { return c.version.Load().(string), nil }

// avNode is one node's scanner, sharing results and counts over its own
// NATS server of the cluster.
type avNode struct {
	cache  *AVCache
	guard  *AVGuard
	filter *scanner.Filter
	met    *avMetrics
}

// avMetrics records the metrics the tests read.
type avMetrics struct {
	mu sync.Mutex
	m  map[string]float64
}

func (a *avMetrics) key(name string, labels []string) string {
	return name + "{" + strings.Join(labels, ",") + "}"
}
func (a *avMetrics) Add(name string, d float64, labels ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]float64{}
	}
	a.m[a.key(name, labels)] += d
}
func (a *avMetrics) Set(name string, v float64, labels ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]float64{}
	}
	a.m[a.key(name, labels)] = v
}
func (a *avMetrics) Observe(name string, v float64, labels ...string) {
	a.Add(name+"_sum", v, labels...)
	a.Add(name+"_count", 1, labels...)
}
func (a *avMetrics) get(name string, labels ...string) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[a.key(name, labels)]
}

func newAVNode(t *testing.T, url, node string, eng scanner.Engine, replicas int, timeout time.Duration) *avNode {
	t.Helper()
	return newAVNodeJS(t, connect(t, url), node, eng, replicas, timeout)
}

// newAVNodeJS is newAVNode on a connection the test made.
func newAVNodeJS(t *testing.T, js jetstream.JetStream, node string, eng scanner.Engine, replicas int, timeout time.Duration) *avNode {
	t.Helper()
	met := &avMetrics{}
	cache, err := NewAVCache(AVCacheConfig{JetStream: js, Bucket: Bucket{Replicas: replicas}})
	if err != nil {
		t.Fatal(err)
	}
	guard, err := NewAVGuard(AVGuardConfig{JetStream: js, Bucket: Bucket{Replicas: replicas}, Node: node, Interval: 100 * time.Millisecond, Metrics: met,
		Logger: slog.New(slog.NewTextHandler(tlog{t, node}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); guard.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	multi, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{eng}, SharedCache: cache, FleetRates: guard,
		SharedTimeout: timeout, Cache: scanner.CacheConfig{VersionTTL: time.Nanosecond}, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	f, err := scanner.New(scanner.Config{Scanner: multi, Leaves: scanner.ArchiveLeaves(archive.New(archive.Config{})), Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	return &avNode{cache: cache, guard: guard, filter: f, met: met}
}

func (n *avNode) check(t *testing.T, raw string) filter.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := n.filter.Check(ctx, filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// withAttachment is a message carrying att as a base64 attachment.
func withAttachment(id int, att []byte) string {
	enc := base64.StdEncoding.EncodeToString(att)
	var b64 strings.Builder
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc)
	return fmt.Sprintf("From: a@example.org\r\nTo: b@example.net\r\nSubject: figures %d\r\nMessage-ID: <%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsee attached, %d\r\n"+
		"--XX\r\nContent-Type: application/octet-stream; name=figures.bin\r\nContent-Disposition: attachment; filename=figures.bin\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--XX--\r\n", id, id, id, b64.String())
}

// The faulty update: a signature on a newsletter footer, flagging clean mail.
const footer = "You receive this newsletter because you subscribed"

func newsletter(id int) string {
	return fmt.Sprintf("From: news@example.org\r\nTo: b@example.net\r\nSubject: issue %d\r\nMessage-ID: <n%d@example.org>\r\n\r\n"+
		"This week's issue %d.\r\n-- \r\n%s.\r\n", id, id, id, footer)
}

func has(res filter.Result, sym, detail string) bool {
	for _, s := range res.Symbols {
		if s.Name == sym && strings.Contains(s.Detail, detail) {
			return true
		}
	}
	return false
}

// Three scanner nodes on a 3-node NATS cluster over one real clamd: a
// repeated attachment is scanned once across the nodes; a new signature
// version scans it again, once; a faulty version that one node has seen
// flag a flood of clean mail makes the other two quarantine, not reject,
// at their next detection.
func TestAVFleet(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{ExtraDB: map[string]string{
		"faulty.ndb": "Faulty.Newsletter.Footer:0:*:" + hex.EncodeToString([]byte(footer)) + "\n"}})
	c := natstest.StartCluster(t, 3)
	var version atomic.Value
	version.Store("ClamAV 1.4.6/27463")
	var mu sync.Mutex
	scans := map[[32]byte]int{}
	var nodes []*avNode
	for i := range 3 {
		cl, err := clamd.New(clamd.Config{Addr: d.Addr, Name: "clamd-1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		eng := counted{Client: cl, version: &version, mu: &mu, scans: scans}
		nodes = append(nodes, newAVNode(t, c.Nodes[i].URL, fmt.Sprintf("n%d", i+1), eng, 3, 10*time.Second))
	}
	for i, n := range nodes {
		waitFor(t, 30*time.Second, func() bool { return n.met.get("portcullis_fleet_av_nodes") == 2 }, fmt.Sprintf("node %d seeing the other two", i+1))
	}
	// Bind the shared bucket first, as a gateway does at start: creating
	// its R3 stream can take longer than a scan's shared-cache timeout on
	// a loaded machine, and a scan whose put fails shares nothing (the
	// test would then wait for an entry that was never written).
	for i, n := range nodes {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		err := n.cache.Bind(ctx)
		cancel()
		if err != nil {
			t.Fatalf("node %d: bind the AV cache: %v", i+1, err)
		}
	}
	att := bytes.Repeat([]byte("quarterly figures, all clean. "), 2000)
	sum := sha256.Sum256(att)
	scansOf := func() int { mu.Lock(); defer mu.Unlock(); return scans[sum] }

	// seen waits until node n's server has the entry (a KV get is
	// answered by the local replica, which may trail the put's quorum).
	seen := func(n *avNode) {
		t.Helper()
		key := scanner.CacheKey{Sum: sum, Engine: "clamd-1", Version: version.Load().(string)}
		waitFor(t, 20*time.Second, func() bool { _, ok, _ := n.cache.Get(t.Context(), key); return ok }, "the shared entry")
	}
	for i, n := range nodes {
		if i > 0 {
			seen(n)
		}
		if res := n.check(t, withAttachment(i, att)); res.Action != filter.Accept {
			t.Fatalf("node %d: %v %v", i+1, res.Action, res.Symbols)
		}
	}
	if got := scansOf(); got != 1 {
		t.Fatalf("the attachment reached clamd %d times across 3 nodes, want 1", got)
	}
	if h := nodes[1].met.get("portcullis_scanner_shared_cache_hits_total", "engine", "clamd-1") +
		nodes[2].met.get("portcullis_scanner_shared_cache_hits_total", "engine", "clamd-1"); h != 2 {
		t.Fatalf("shared cache hits on nodes 2 and 3: %v, want 2", h)
	}
	var gets, getSecs float64
	for _, n := range nodes {
		gets += n.met.get("portcullis_scanner_shared_cache_seconds_count", "op", "get")
		getSecs += n.met.get("portcullis_scanner_shared_cache_seconds_sum", "op", "get")
	}
	t.Logf("shared cache: %v KV gets, %.2f ms each on average (the first binds the bucket)", gets, 1000*getSecs/gets)
	// The steady cost of a hit: one KV get (R3, direct get) and a decode.
	ac, err := NewAVCache(AVCacheConfig{JetStream: connect(t, c.Nodes[1].URL)})
	if err != nil {
		t.Fatal(err)
	}
	key := scanner.CacheKey{Sum: sum, Engine: "clamd-1", Version: version.Load().(string)}
	const rounds = 200
	start := time.Now()
	for range rounds {
		if _, ok, err := ac.Get(t.Context(), key); !ok || err != nil {
			t.Fatalf("get: %v %v", ok, err)
		}
	}
	t.Logf("shared cache hit: %v per KV get (%d gets)", time.Since(start)/rounds, rounds)
	start = time.Now()
	for i := range rounds {
		if err := ac.Put(t.Context(), avKeyOf(i, "cost"), scanner.Result{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("shared cache store: %v per KV put (R3, memory storage; %d puts)", time.Since(start)/rounds, rounds)

	// A new signature version: the old entries are not used.
	version.Store("ClamAV 1.4.6/27464")
	nodes[2].check(t, withAttachment(10, att))
	seen(nodes[0])
	nodes[0].check(t, withAttachment(11, att))
	if got := scansOf(); got != 2 {
		t.Fatalf("after the version change the attachment reached clamd %d times in all, want 2", got)
	}

	// The faulty update, version 27465. Without the fleet's counts a
	// detection is rejected.
	const faulty = "ClamAV 1.4.6/27465"
	version.Store(faulty)
	if res := nodes[2].check(t, newsletter(0)); res.Action != filter.Reject {
		t.Fatalf("node 3 before the flood: %v %v, want reject", res.Action, res.Symbols)
	}
	const flood = 30
	for i := 1; i <= flood; i++ {
		nodes[0].check(t, newsletter(i))
	}
	flooded := time.Now()
	for _, n := range nodes[1:] {
		waitFor(t, 20*time.Second, func() bool {
			r, _ := n.guard.Rate("clamd-1", faulty)
			return r.Scans > flood && r.Nodes >= 2
		}, "the fleet's counts of the faulty version")
	}
	t.Logf("the flood on node 1 reached nodes 2 and 3 in %v (publish interval 100ms)", time.Since(flooded))
	for i, n := range nodes[1:] {
		res := n.check(t, newsletter(100+i))
		if res.Action != filter.Quarantine || !has(res, scanner.SymSuspect, "fleet detection rate") {
			t.Fatalf("node %d after the flood on node 1: %v %v, want quarantine by the fleet's rate", i+2, res.Action, res.Symbols)
		}
		if n.met.get("portcullis_scanner_fleet_suspect", "engine", "clamd-1") != 1 {
			t.Fatalf("node %d: fleet suspect gauge not set", i+2)
		}
	}
	// A real virus under a good version is still rejected everywhere.
	version.Store("ClamAV 1.4.6/27466")
	if res := nodes[1].check(t, withAttachment(20, testsvc.Eicar())); res.Action != filter.Reject {
		t.Fatalf("EICAR under a good version: %v %v, want reject", res.Action, res.Symbols)
	}
}

// NATS unavailable: the scanner scans locally, and the outage is a metric.
func TestAVCacheNATSDown(t *testing.T) {
	d := testsvc.SharedClamd(t)
	n := natstest.Start(t)
	cl, err := clamd.New(clamd.Config{Addr: d.Addr, Name: "clamd-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	var version atomic.Value
	version.Store("ClamAV 1.4.6/27463")
	scans := map[[32]byte]int{}
	node := newAVNode(t, n.URL, "solo", counted{Client: cl, version: &version, mu: &sync.Mutex{}, scans: scans}, 1, 500*time.Millisecond)
	if res := node.check(t, withAttachment(1, []byte("clean bytes"))); res.Action != filter.Accept {
		t.Fatalf("%v %v", res.Action, res.Symbols)
	}
	if node.met.get("portcullis_scanner_shared_cache_up") != 1 || node.met.get("portcullis_scanner_shared_cache_errors_total", "op", "put") != 0 {
		t.Fatalf("shared cache not up with NATS up: %v", node.met.m)
	}
	n.Stop()
	res := node.check(t, withAttachment(2, testsvc.Eicar()))
	if res.Action != filter.Reject || !has(res, scanner.SymInfected, testsvc.EicarSignature) {
		t.Fatalf("with NATS down: %v %v, want a local detection", res.Action, res.Symbols)
	}
	if node.met.get("portcullis_scanner_shared_cache_up") != 0 ||
		node.met.get("portcullis_scanner_shared_cache_errors_total", "op", "get")+node.met.get("portcullis_scanner_shared_cache_errors_total", "op", "put") == 0 {
		t.Fatalf("outage not visible: %v", node.met.m)
	}
	if res := node.check(t, withAttachment(3, []byte("more clean bytes"))); res.Action != filter.Accept {
		t.Fatalf("clean mail with NATS down: %v %v", res.Action, res.Symbols)
	}
}

func waitFor(t *testing.T, max time.Duration, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(max)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, max)
		}
		<-tick.C
	}
}

type tlog struct {
	t    *testing.T
	node string
}

func (l tlog) Write(p []byte) (int, error) { l.t.Log(l.node, string(p)); return len(p), nil }
