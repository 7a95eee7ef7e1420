package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/scanner"
)

// Defaults and limits of the fleet-wide faulty-update guard.
const (
	AVRatesBucket = "portcullis-av-rates"
	// DefaultAVRatesInterval is how often a node publishes changed counts.
	DefaultAVRatesInterval = time.Second
	// DefaultAVRatesTTL is how long a node's counts count after it last
	// published them (it republishes every third of it while alive).
	DefaultAVRatesTTL = 30 * time.Second
	// DefaultAVVersions is how many signature versions per engine a node
	// keeps counts for (the newest).
	DefaultAVVersions = 4
	// DefaultAVNodes bounds how many other nodes' counts are kept.
	DefaultAVNodes = 1024
	// MaxRateEntries bounds the (engine, version) counts of one node's
	// value; MaxRatesBytes the value; maxName an engine or version.
	MaxRateEntries = 256
	MaxRatesBytes  = 64 << 10
	maxName        = 256
	maxCount       = 1 << 50
)

// AVGuardConfig configures an AVGuard.
type AVGuardConfig struct {
	JetStream jetstream.JetStream
	Bucket    Bucket // default AVRatesBucket
	// Node is this node's id (required; the key of its counts).
	Node        string
	Interval    time.Duration  // default DefaultAVRatesInterval
	TTL         time.Duration  // default DefaultAVRatesTTL
	MaxVersions int            // default DefaultAVVersions
	MaxNodes    int            // default DefaultAVNodes
	Logger      *slog.Logger   // nil discards
	Metrics     filter.Metrics // nil discards
}

// AVGuard is a scanner.FleetRates on a JetStream KV bucket: every node
// counts its scans per engine and signature version in memory (Record),
// publishes the counts under its node id every Interval when they
// changed (and every TTL/3 regardless, as a heartbeat), and watches every
// other node's, so Rate is the fleet's total without a network round
// trip. A bad signature version that floods one node's detections is
// doubted on every node one publish interval later.
//
// Counts are cumulative per version for the node's lifetime: a
// signature version is what a faulty update changes, and its whole
// history is the evidence. A node's counts stop counting TTL after its
// last publish (it died, or this node lost NATS): while NATS is
// unreachable the guard judges on the node's own counts and the others'
// last ones until they age out, then on its own alone; the scanner's
// local guard keeps working throughout.
type AVGuard struct {
	cfg AVGuardConfig
	log *slog.Logger
	met filter.Metrics

	mu     sync.Mutex
	own    map[rateKey]*rateCount
	order  map[string][]string // engine → versions, oldest first
	dirty  bool
	others map[string]*nodeRates
	totals map[rateKey]scanner.FleetRate
}

var _ scanner.FleetRates = (*AVGuard)(nil)

type rateKey struct{ engine, version string }

type rateCount struct{ scans, hits int64 }

type nodeRates struct {
	seen   time.Time
	counts map[rateKey]rateCount
}

// NewAVGuard checks the configuration; Run publishes and watches.
func NewAVGuard(cfg AVGuardConfig) (*AVGuard, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("fleet: AV guard: no JetStream")
	}
	if !validKey(cfg.Node) {
		return nil, fmt.Errorf("fleet: node id %q: not a KV key (letters, digits, - and _)", cfg.Node)
	}
	if cfg.Bucket.Name == "" {
		cfg.Bucket.Name = AVRatesBucket
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultAVRatesInterval
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultAVRatesTTL
	}
	cfg.TTL = max(cfg.TTL, 3*cfg.Interval)
	if cfg.MaxVersions <= 0 {
		cfg.MaxVersions = DefaultAVVersions
	}
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultAVNodes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AVGuard{cfg: cfg, log: log, met: filter.OrNop(cfg.Metrics), own: map[rateKey]*rateCount{},
		order: map[string][]string{}, others: map[string]*nodeRates{}, totals: map[rateKey]scanner.FleetRate{}}, nil
}

func validKey(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Record implements scanner.FleetRates.
func (g *AVGuard) Record(engine, version string, hit bool) {
	if len(engine) > maxName || len(version) > maxName {
		return
	}
	k := rateKey{engine, version}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.own[k]
	if c == nil {
		if len(g.own) >= MaxRateEntries {
			return
		}
		c = &rateCount{}
		g.own[k] = c
		vs := append(g.order[engine], version)
		for len(vs) > g.cfg.MaxVersions {
			delete(g.own, rateKey{engine, vs[0]})
			vs = vs[1:]
		}
		g.order[engine] = vs
	}
	c.scans++
	if hit {
		c.hits++
	}
	g.dirty = true
}

// Rate implements scanner.FleetRates.
func (g *AVGuard) Rate(engine, version string) (scanner.FleetRate, bool) {
	k := rateKey{engine, version}
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.totals[k]
	if c := g.own[k]; c != nil {
		r.Scans, r.Hits, r.Nodes = r.Scans+c.scans, r.Hits+c.hits, r.Nodes+1
	}
	return r, r.Scans > 0
}

// Run publishes this node's counts and watches the others' until ctx
// ends. NATS outages are survived: publishing resumes and the watch is
// made again. It returns ctx's error.
func (g *AVGuard) Run(ctx context.Context) error {
	var kv jetstream.KeyValue
	var watchDone chan struct{}
	var lastPut time.Time
	failing := false
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		if kv == nil {
			// Bounded: nodes creating the bucket at once can leave one
			// waiting for the API timeout; the next attempt binds it.
			bctx, cancel := context.WithTimeout(ctx, max(g.cfg.Interval, 2*time.Second))
			var err error
			kv, err = bindKV(bctx, g.cfg.JetStream, jetstream.KeyValueConfig{
				Bucket: g.cfg.Bucket.Name, History: 1, TTL: g.cfg.TTL, Replicas: max(g.cfg.Bucket.Replicas, 1),
				Description: "Portcullis AV detection counts", Storage: jetstream.MemoryStorage,
			})
			cancel()
			if err != nil && !failing && ctx.Err() == nil {
				g.log.Warn("fleet: AV rates bucket; the guard judges on local counts", "err", err)
				failing = true
			}
		}
		if kv != nil && watchDone == nil {
			watchDone = make(chan struct{})
			go func(done chan struct{}) {
				defer close(done)
				g.watch(ctx, kv)
			}(watchDone)
		}
		if kv != nil {
			if err := g.publish(ctx, kv, &lastPut); err != nil && ctx.Err() == nil {
				g.met.Add("portcullis_fleet_av_publish_errors_total", 1)
				if !failing {
					g.log.Warn("fleet: AV counts not published", "err", err)
					failing = true
				}
			} else if err == nil && failing {
				g.log.Info("fleet: AV counts published again")
				failing = false
			}
		}
		g.sweep()
		select {
		case <-ctx.Done():
			if watchDone != nil {
				<-watchDone
			}
			return ctx.Err()
		case <-t.C:
		case <-watchDone:
			watchDone = nil // made again at the next tick
		}
	}
}

// publish puts this node's counts when they changed or the heartbeat is due.
func (g *AVGuard) publish(ctx context.Context, kv jetstream.KeyValue, last *time.Time) error {
	g.mu.Lock()
	due := g.dirty || time.Since(*last) >= g.cfg.TTL/3
	var v ratesValue
	if due {
		v.Node = g.cfg.Node
		for k, c := range g.own {
			v.Counts = append(v.Counts, rateEntry{Engine: k.engine, Version: k.version, Scans: c.scans, Hits: c.hits})
		}
		g.dirty = false
	}
	g.mu.Unlock()
	if !due {
		return nil
	}
	data, err := json.Marshal(v)
	if err == nil && len(data) > MaxRatesBytes {
		err = fmt.Errorf("%w: %d bytes of counts", ErrValueTooLarge, len(data))
	}
	if err == nil {
		_, err = kv.Put(ctx, g.cfg.Node, data)
	}
	if err != nil {
		g.mu.Lock()
		g.dirty = true
		g.mu.Unlock()
		return err
	}
	*last = time.Now()
	return nil
}

// watch applies every other node's counts until the watch or ctx ends.
func (g *AVGuard) watch(ctx context.Context, kv jetstream.KeyValue) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("fleet: AV rates watch", "err", err)
		}
		return
	}
	defer w.Stop()
	g.log.Debug("fleet: AV rates watch started")
	for {
		var e jetstream.KeyValueEntry
		var open bool
		select {
		case <-ctx.Done():
			return
		case e, open = <-w.Updates():
		}
		if !open {
			return
		}
		if e == nil || e.Key() == g.cfg.Node {
			continue
		}
		if e.Operation() != jetstream.KeyValuePut {
			g.apply(e.Key(), nil)
			continue
		}
		counts, err := decodeRates(e.Key(), e.Value())
		if err != nil {
			g.met.Add("portcullis_fleet_av_refused_total", 1)
			g.log.Warn("fleet: AV counts refused", "node", e.Key(), "err", err)
			continue
		}
		g.apply(e.Key(), counts)
	}
}

// apply replaces one node's counts in the totals (nil removes the node).
func (g *AVGuard) apply(node string, counts map[rateKey]rateCount) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.others[node]
	if old == nil && counts != nil && len(g.others) >= g.cfg.MaxNodes {
		return
	}
	if old != nil {
		g.addLocked(old.counts, -1)
		delete(g.others, node)
	}
	if counts != nil {
		g.others[node] = &nodeRates{seen: time.Now(), counts: counts}
		g.addLocked(counts, 1)
	}
	g.met.Set("portcullis_fleet_av_nodes", float64(len(g.others)))
}

func (g *AVGuard) addLocked(counts map[rateKey]rateCount, sign int64) {
	for k, c := range counts {
		t := g.totals[k]
		t.Scans += sign * c.scans
		t.Hits += sign * c.hits
		t.Nodes += int(sign)
		if t.Nodes <= 0 {
			delete(g.totals, k)
			continue
		}
		g.totals[k] = t
	}
}

// sweep drops the counts of nodes silent for longer than TTL.
func (g *AVGuard) sweep() {
	g.mu.Lock()
	var stale []string
	for n, r := range g.others {
		if time.Since(r.seen) > g.cfg.TTL {
			stale = append(stale, n)
		}
	}
	g.mu.Unlock()
	for _, n := range stale {
		g.apply(n, nil)
	}
}

// ratesValue is one node's published counts.
type ratesValue struct {
	Node   string      `json:"node"`
	Counts []rateEntry `json:"counts"`
}

type rateEntry struct {
	Engine  string `json:"e"`
	Version string `json:"v"`
	Scans   int64  `json:"s"`
	Hits    int64  `json:"h"`
}

// decodeRates decodes the value of node's key; a value naming another
// node, or beyond the limits, is ErrValue.
func decodeRates(node string, data []byte) (map[rateKey]rateCount, error) {
	if len(data) > MaxRatesBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrValue, len(data))
	}
	var v ratesValue
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrValue, err)
	}
	if v.Node != node {
		return nil, fmt.Errorf("%w: counts of %q under the key %q", ErrValue, v.Node, node)
	}
	if len(v.Counts) > MaxRateEntries {
		return nil, fmt.Errorf("%w: %d counts", ErrValue, len(v.Counts))
	}
	out := make(map[rateKey]rateCount, len(v.Counts))
	for _, c := range v.Counts {
		if c.Engine == "" || len(c.Engine) > maxName || len(c.Version) > maxName || strings.ContainsRune(c.Engine, 0) {
			return nil, fmt.Errorf("%w: engine %.40q version %.40q", ErrValue, c.Engine, c.Version)
		}
		if c.Scans < 0 || c.Hits < 0 || c.Hits > c.Scans || c.Scans > maxCount {
			return nil, fmt.Errorf("%w: %d hits of %d scans", ErrValue, c.Hits, c.Scans)
		}
		k := rateKey{c.Engine, c.Version}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: %s %q counted twice", ErrValue, c.Engine, c.Version)
		}
		out[k] = rateCount{scans: c.Scans, hits: c.Hits}
	}
	return out, nil
}
