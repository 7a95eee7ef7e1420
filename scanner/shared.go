package scanner

import (
	"context"
	"errors"
	"sync"
	"time"
)

// SharedCache is a result cache shared by the nodes of a fleet (package
// fleet implements it on a JetStream KV bucket), so that a message fanned
// out to many nodes is scanned once. Multi asks it after a miss of its
// own cache and fills it after every scan; an answer from it counts as a
// cached answer (Verdict.Cached, Verdict.Shared).
//
// It is an optimisation, never a reason to fail or pass mail: an error
// of Get or Put is counted and logged, and the engines scan as if there
// were no shared cache. Implementations must be safe for concurrent use
// and honour ctx.
type SharedCache interface {
	// Get returns the result cached under k; ok is false on a miss.
	Get(ctx context.Context, k CacheKey) (r Result, ok bool, err error)
	// Put stores a result the engine gave for k.
	Put(ctx context.Context, k CacheKey, r Result) error
}

// CacheKey names one engine's judgement of some bytes: their SHA-256, the
// engine's name and its signature version. A new version names new keys,
// so an old version's results are never used once the engine reports the
// new one.
type CacheKey struct {
	Sum     [32]byte
	Engine  string
	Version string
}

// FleetRates shares the faulty-update guard's counts across a fleet
// (package fleet implements it on a JetStream KV bucket): each node
// records its scans per engine and signature version, and reads the
// fleet's totals, so a faulty version that one node has seen flag too
// much makes every node doubt it at its next detection.
//
// Multi calls Record after every scan an engine answered (not cached
// answers: the node that scanned counted them) and Rate before judging a
// detection, both on the scanning path: they must not block (keep the
// counts in memory and publish them in the background). An engine with
// no signature version (Versioner) is judged by the local guard alone.
type FleetRates interface {
	// Record counts one scan of engine at version; hit is a detection.
	Record(engine, version string, hit bool)
	// Rate returns the fleet's counts for engine at version, this node's
	// included; ok is false when the fleet has none.
	Rate(engine, version string) (r FleetRate, ok bool)
}

// FleetRate is the fleet's count of one engine's scans at one signature
// version.
type FleetRate struct {
	Scans, Hits int64
	Nodes       int // how many nodes' counts are in it
}

// Rate is Hits/Scans, 0 without scans.
func (r FleetRate) Rate() float64 {
	if r.Scans <= 0 {
		return 0
	}
	return float64(r.Hits) / float64(r.Scans)
}

// Defaults of the shared cache.
const (
	// DefaultSharedTimeout bounds one Get or Put of the shared cache.
	DefaultSharedTimeout = 250 * time.Millisecond
	// DefaultSharedRetry is how long the shared cache is left alone after
	// a failure, so an outage does not add a timeout to every scan.
	DefaultSharedRetry = 10 * time.Second
)

// ErrSharedDown: the shared cache failed recently and is not asked until
// its retry time (Options.SharedRetry).
var ErrSharedDown = errors.New("scanner: shared cache down")

// shared wraps a SharedCache with a timeout, a retry pause after
// failures, and the metrics and log lines that make an outage visible.
type shared struct {
	c       SharedCache
	timeout time.Duration
	retry   time.Duration
	m       *Multi

	mu        sync.Mutex
	downUntil time.Time
	down      bool
}

func newShared(m *Multi, c SharedCache, timeout, retry time.Duration) *shared {
	if c == nil {
		return nil
	}
	if timeout <= 0 {
		timeout = DefaultSharedTimeout
	}
	if retry <= 0 {
		retry = DefaultSharedRetry
	}
	m.metrics.Set("portcullis_scanner_shared_cache_up", 1)
	return &shared{c: c, timeout: timeout, retry: retry, m: m}
}

// usable reports whether the cache may be asked now.
func (s *shared) usable() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.down || !s.m.now().Before(s.downUntil)
}

// get asks the shared cache; a failure is a miss.
func (s *shared) get(ctx context.Context, k CacheKey) (Result, bool) {
	if !s.usable() {
		return Result{}, false
	}
	gctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := s.m.now()
	res, ok, err := s.c.Get(gctx, k)
	s.m.metrics.Observe("portcullis_scanner_shared_cache_seconds", s.m.now().Sub(start).Seconds(), "op", "get")
	if err != nil {
		s.failed(ctx, "get", k.Engine, err)
		return Result{}, false
	}
	s.ok()
	if !ok {
		s.m.metrics.Add("portcullis_scanner_shared_cache_misses_total", 1, "engine", k.Engine)
		return Result{}, false
	}
	s.m.metrics.Add("portcullis_scanner_shared_cache_hits_total", 1, "engine", k.Engine)
	return res, true
}

// put stores a result; a failure is counted and otherwise ignored.
func (s *shared) put(ctx context.Context, k CacheKey, r Result) {
	if !s.usable() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := s.m.now()
	err := s.c.Put(pctx, k, r)
	s.m.metrics.Observe("portcullis_scanner_shared_cache_seconds", s.m.now().Sub(start).Seconds(), "op", "put")
	if err != nil {
		s.failed(ctx, "put", k.Engine, err)
		return
	}
	s.ok()
}

func (s *shared) failed(ctx context.Context, op, engine string, err error) {
	if ctx.Err() != nil {
		return // the caller gave up; that says nothing about the cache
	}
	s.m.metrics.Add("portcullis_scanner_shared_cache_errors_total", 1, "op", op)
	s.mu.Lock()
	was := s.down
	s.down, s.downUntil = true, s.m.now().Add(s.retry)
	s.mu.Unlock()
	if !was {
		s.m.metrics.Set("portcullis_scanner_shared_cache_up", 0)
		s.m.log.Warn("scanner: shared cache failed; scanning locally", "op", op, "engine", engine, "retry", s.retry, "err", err)
	}
}

func (s *shared) ok() {
	s.mu.Lock()
	was := s.down
	s.down = false
	s.mu.Unlock()
	if was {
		s.m.metrics.Set("portcullis_scanner_shared_cache_up", 1)
		s.m.log.Info("scanner: shared cache back")
	}
}

// fleetJudge returns whether the fleet's counts for the engine at ver make
// it suspect, with the fleet's rate.
func (m *Multi) fleetJudge(name, ver string, base float64) (rate float64, suspect bool) {
	if m.fleet == nil || ver == "" || m.opts.Guard.Disabled {
		return 0, false
	}
	r, ok := m.fleet.Rate(name, ver)
	if !ok || r.Scans < int64(m.opts.Guard.MinScans) {
		return r.Rate(), false
	}
	return r.Rate(), r.Rate() > m.opts.Guard.Multiple*base
}

// judge combines the local guard's state with the fleet's for one answer
// of mem at ver, and reports a change of the fleet's judgement once.
func (m *Multi) judge(mem *member, ver string, a *answer) {
	frate, fsuspect := m.fleetJudge(mem.e.Name(), ver, a.base)
	mem.mu.Lock()
	flipped := m.fleet != nil && ver != "" && fsuspect != mem.fleetSuspect
	if flipped {
		mem.fleetSuspect = fsuspect
	}
	mem.mu.Unlock()
	if flipped {
		name := mem.e.Name()
		m.metrics.Set("portcullis_scanner_fleet_suspect", b2f(fsuspect), "engine", name)
		m.log.Warn("scanner: fleet detection rate", "engine", name, "version", ver, "suspect", fsuspect, "rate", frate, "baseline", a.base)
	}
	if fsuspect && !a.suspect {
		a.suspect, a.fleet, a.rate = true, true, frate
	}
}
