package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeEngine judges by content: bytes containing "VIRUS" are infected,
// unless flagAll (a faulty update) flags everything; err fails every scan.
type fakeEngine struct {
	name    string
	flagAll atomic.Bool
	err     atomic.Value // error
	version atomic.Value // string
	calls   atomic.Int32
	delay   time.Duration
}

func newFake(name string) *fakeEngine {
	f := &fakeEngine{name: name}
	f.version.Store("1")
	return f
}

func (f *fakeEngine) Name() string { return f.name }

func (f *fakeEngine) Scan(ctx context.Context, r io.Reader) (Result, error) {
	f.calls.Add(1)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	if e := f.failure(); e != nil {
		return Result{}, e
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return Result{}, err
	}
	if f.flagAll.Load() {
		return Result{Signatures: []string{"Faulty.Update"}}, nil
	}
	if bytes.Contains(b, []byte("VIRUS")) {
		return Result{Signatures: []string{"Test.Virus"}}, nil
	}
	return Result{}, nil
}

// setErr makes every scan fail with err (nil: succeed again).
func (f *fakeEngine) setErr(err error) { f.err.Store(&errBox{err}) }

type errBox struct{ error }

func (f *fakeEngine) failure() error {
	if b, _ := f.err.Load().(*errBox); b != nil {
		return b.error
	}
	return nil
}

func (f *fakeEngine) Version(context.Context) (string, error) {
	if e := f.failure(); e != nil && !isContent(e) {
		return "", e
	}
	return f.version.Load().(string), nil
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recMetrics records counters and gauges.
type recMetrics struct {
	mu sync.Mutex
	m  map[string]float64
}

func (r *recMetrics) key(name string, labels []string) string {
	return name + "{" + strings.Join(labels, ",") + "}"
}
func (r *recMetrics) Add(name string, d float64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]float64{}
	}
	r.m[r.key(name, labels)] += d
}
func (r *recMetrics) Set(name string, v float64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]float64{}
	}
	r.m[r.key(name, labels)] = v
}
func (r *recMetrics) Observe(name string, v float64, labels ...string) {
	r.Add(name+"_count", 1, labels...)
}
func (r *recMetrics) get(name string, labels ...string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[r.key(name, labels)]
}

func mustMulti(t *testing.T, o Options) *Multi {
	t.Helper()
	m, err := NewMulti(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scanString(t *testing.T, m *Multi, s string) (Verdict, error) {
	t.Helper()
	return m.Scan(t.Context(), strings.NewReader(s), int64(len(s)))
}

func TestAnyHit(t *testing.T) {
	a, b := newFake("a"), newFake("b")
	m := mustMulti(t, Options{Engines: []Engine{a, b}, Cache: CacheConfig{Entries: -1}})
	v, err := scanString(t, m, "hello")
	if err != nil || !v.Clean() || v.Answers != 2 {
		t.Fatalf("clean: %+v %v", v, err)
	}
	b.flagAll.Store(true)
	v, err = scanString(t, m, "hello")
	if err != nil || !v.Infected || len(v.Detections) != 1 || v.Detections[0].Engine != "b" {
		t.Fatalf("one engine hits: %+v %v", v, err)
	}
}

func TestQuorumLoneDetection(t *testing.T) {
	a, b, c := newFake("a"), newFake("b"), newFake("c")
	c.flagAll.Store(true)
	m := mustMulti(t, Options{Engines: []Engine{a, b, c}, Mode: Quorum, Cache: CacheConfig{Entries: -1}})
	v, err := scanString(t, m, "hello")
	if err != nil || v.Infected || !v.Unconfirmed || v.Quorum != 2 {
		t.Fatalf("lone detection: %+v %v", v, err)
	}
	v, err = scanString(t, m, "a VIRUS")
	if err != nil || !v.Infected || len(v.Detections) != 3 {
		t.Fatalf("three agree: %+v %v", v, err)
	}
	if _, err := NewMulti(Options{Engines: []Engine{a}, Mode: Quorum, Quorum: 2}); err == nil {
		t.Fatal("quorum 2 of 1 accepted")
	}
}

func TestFailoverToSpare(t *testing.T) {
	slow, spare := newFake("slow"), newFake("spare")
	slow.delay = time.Minute
	m := mustMulti(t, Options{Engines: []Engine{slow}, Backups: []Engine{spare}, Timeout: 200 * time.Millisecond, Cache: CacheConfig{Entries: -1}})
	v, err := scanString(t, m, "VIRUS")
	if err != nil || !v.Infected || v.Detections[0].Engine != "spare" {
		t.Fatalf("failover: %+v %v", v, err)
	}
	if len(v.Down) != 1 || v.Down[0].Engine != "slow" || !errors.Is(v.Down[0], context.DeadlineExceeded) {
		t.Fatalf("down: %v", v.Down)
	}
}

func TestAllDown(t *testing.T) {
	a, b := newFake("a"), newFake("b")
	a.setErr(errors.New("connection refused"))
	b.setErr(errors.New("connection refused"))
	m := mustMulti(t, Options{Engines: []Engine{a}, Backups: []Engine{b}, Cache: CacheConfig{Entries: -1}})
	_, err := scanString(t, m, "hello")
	if !errors.Is(err, ErrAllDown) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("all down: %v", err)
	}
	// Quorum not reached: one of two answers clean.
	a.setErr(nil)
	q := mustMulti(t, Options{Engines: []Engine{a, b}, Mode: Quorum, Quorum: 2, Cache: CacheConfig{Entries: -1}})
	if _, err := scanString(t, q, "hello"); !errors.Is(err, ErrAllDown) {
		t.Fatalf("quorum not reached: %v", err)
	}
}

func TestContentErrorsAreNotOutages(t *testing.T) {
	a := newFake("a")
	a.setErr(&ContentError{Reply: "stream: corrupt ERROR"})
	m := mustMulti(t, Options{Engines: []Engine{a}, Breaker: BreakerConfig{Failures: 1}, Cache: CacheConfig{Entries: -1}})
	for range 3 {
		v, err := scanString(t, m, "hello")
		if err != nil || len(v.Failures) != 1 || v.Clean() || v.Partial() {
			t.Fatalf("content error: %+v %v", v, err)
		}
	}
	if st := m.States()[0].Breaker; st != Closed {
		t.Fatalf("content errors opened the breaker: %v", st)
	}
	a.setErr(&ContentError{Reply: "INSTREAM size limit exceeded. ERROR", SizeLimit: true})
	v, err := scanString(t, m, "hello")
	if err != nil || !v.Partial() {
		t.Fatalf("size limit: %+v %v", v, err)
	}
}

func TestBreaker(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	a, spare := newFake("a"), newFake("spare")
	a.setErr(errors.New("refused"))
	met := &recMetrics{}
	m := mustMulti(t, Options{Engines: []Engine{a}, Backups: []Engine{spare}, Breaker: BreakerConfig{Failures: 2, Cooldown: time.Minute},
		Cache: CacheConfig{Entries: -1}, Metrics: met, now: clk.now})
	for range 2 {
		if _, err := scanString(t, m, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.States()[0].Breaker; st != Open || met.get("portcullis_scanner_breaker_state", "engine", "a") != float64(Open) {
		t.Fatalf("after 2 failures: %v", st)
	}
	calls := a.calls.Load()
	v, err := scanString(t, m, "x")
	if err != nil || a.calls.Load() != calls || !errors.Is(v.Down[0], ErrBreakerOpen) {
		t.Fatalf("open breaker still asked the engine: %+v %v", v, err)
	}
	// Half-open: one probe fails and the breaker opens again.
	clk.add(time.Minute)
	if st := m.States()[0].Breaker; st != HalfOpen {
		t.Fatalf("after cooldown: %v", st)
	}
	scanString(t, m, "x")
	if a.calls.Load() != calls+1 || m.States()[0].Breaker != Open {
		t.Fatalf("failed probe: calls %d, state %v", a.calls.Load()-calls, m.States()[0].Breaker)
	}
	// The next probe succeeds and closes it.
	clk.add(time.Minute)
	a.setErr(nil)
	if v, err := scanString(t, m, "VIRUS"); err != nil || v.Detections[0].Engine != "a" {
		t.Fatalf("probe: %+v %v", v, err)
	}
	if st := m.States()[0].Breaker; st != Closed || met.get("portcullis_scanner_breaker_state", "engine", "a") != float64(Closed) {
		t.Fatalf("after a good probe: %v", st)
	}
	if err := m.Ready(); err != nil {
		t.Fatal(err)
	}
}

func TestBreakerOneProbeAtATime(t *testing.T) {
	b := &breaker{cfg: BreakerConfig{Failures: 1, Cooldown: time.Second}.withDefaults(), now: (&clock{t: time.Unix(1, 0)}).now}
	b.record(false)
	if b.allow() {
		t.Fatal("open breaker allowed a scan")
	}
	clk := &clock{t: time.Unix(10, 0)}
	b.now = clk.now
	if !b.allow() || b.allow() {
		t.Fatal("half-open must allow exactly one probe")
	}
	b.release()
	if !b.allow() {
		t.Fatal("a released probe must let the next one through")
	}
}

func TestGuardFaultyUpdate(t *testing.T) {
	a := newFake("a")
	met := &recMetrics{}
	m := mustMulti(t, Options{Engines: []Engine{a}, Guard: GuardConfig{Window: 20, MinScans: 10, Multiple: 3, Baseline: 0.05},
		Cache: CacheConfig{Entries: -1}, Metrics: met})
	// Normal traffic: 1 in 10 infected; detections are confirmed.
	for i := range 30 {
		s := "clean"
		if i%10 == 0 {
			s = "VIRUS"
		}
		v, err := scanString(t, m, s)
		if err != nil || v.Infected != (i%10 == 0) || v.Unconfirmed {
			t.Fatalf("normal %d: %+v %v", i, v, err)
		}
	}
	// A faulty update: everything is flagged. Within the window the rate
	// passes 3 x baseline and the detections turn unconfirmed.
	a.flagAll.Store(true)
	var suspectAt int
	for i := range 20 {
		v, err := scanString(t, m, "clean")
		if err != nil {
			t.Fatal(err)
		}
		if v.Unconfirmed {
			suspectAt = i
			if !v.Detections[0].Suspect || v.Detections[0].Rate <= 3*v.Detections[0].Base {
				t.Fatalf("detection %+v", v.Detections[0])
			}
			break
		}
	}
	if suspectAt == 0 {
		t.Fatal("the guard never noticed")
	}
	if met.get("portcullis_scanner_suspect_total", "engine", "a") < 1 || !m.States()[0].Suspect || met.get("portcullis_scanner_suspect", "engine", "a") != 1 {
		t.Fatal("no suspect metric or state")
	}
	// The fix ships: the rate falls back and detections count again.
	a.flagAll.Store(false)
	for range 20 {
		scanString(t, m, "clean")
	}
	if v, _ := scanString(t, m, "VIRUS"); !v.Infected || met.get("portcullis_scanner_suspect", "engine", "a") != 0 {
		t.Fatalf("after recovery: %+v", v)
	}
}

func TestGuardConfirmedByAnotherEngine(t *testing.T) {
	a, b := newFake("a"), newFake("b")
	a.flagAll.Store(true)
	m := mustMulti(t, Options{Engines: []Engine{a, b}, Guard: GuardConfig{Window: 10, MinScans: 5}, Cache: CacheConfig{Entries: -1}})
	for range 10 {
		scanString(t, m, "clean")
	}
	v, _ := scanString(t, m, "clean")
	if !v.Unconfirmed || v.Infected {
		t.Fatalf("faulty engine alone: %+v", v)
	}
	v, _ = scanString(t, m, "VIRUS")
	if !v.Infected {
		t.Fatalf("confirmed by the healthy engine: %+v", v)
	}
}

func TestCache(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	a := newFake("a")
	met := &recMetrics{}
	m := mustMulti(t, Options{Engines: []Engine{a}, Cache: CacheConfig{Entries: 2, TTL: time.Hour, VersionTTL: time.Minute}, Metrics: met, now: clk.now})
	for range 3 {
		v, err := scanString(t, m, "VIRUS one")
		if err != nil || !v.Infected {
			t.Fatal(v, err)
		}
	}
	if n := a.calls.Load(); n != 1 {
		t.Fatalf("engine asked %d times for the same bytes, want 1", n)
	}
	if v, _ := scanString(t, m, "VIRUS one"); v.Cached != 1 {
		t.Fatalf("not marked cached: %+v", v)
	}
	// A new signature version invalidates, once the version is re-read.
	a.version.Store("2")
	scanString(t, m, "VIRUS one")
	if n := a.calls.Load(); n != 1 {
		t.Fatalf("version re-read before VersionTTL: calls %d", n)
	}
	clk.add(2 * time.Minute)
	scanString(t, m, "VIRUS one")
	if n := a.calls.Load(); n != 2 {
		t.Fatalf("new version did not miss: calls %d", n)
	}
	// Bounded: three distinct inputs in a cache of two.
	for _, s := range []string{"x", "y", "z"} {
		scanString(t, m, s)
	}
	if n := m.cache.len(); n != 2 {
		t.Fatalf("cache holds %d, bound 2", n)
	}
	// TTL.
	calls := a.calls.Load()
	clk.add(2 * time.Hour)
	scanString(t, m, "z")
	if a.calls.Load() == calls {
		t.Fatal("expired entry served")
	}
	// Errors are not cached.
	a.setErr(&ContentError{Reply: "x ERROR"})
	clk.add(2 * time.Minute)
	scanString(t, m, "err")
	a.setErr(nil)
	calls = a.calls.Load()
	if v, _ := scanString(t, m, "err"); len(v.Failures) != 0 || a.calls.Load() != calls+1 {
		t.Fatalf("error cached: %+v", v)
	}
	if met.get("portcullis_scanner_cache_hits_total", "engine", "a") < 3 {
		t.Fatal("no cache hit metric")
	}
}

func TestNoEngineNoVersion(t *testing.T) {
	// An engine without a version is never cached.
	n := 0
	e := EngineFunc("plain", func(ctx context.Context, r io.Reader) (Result, error) { n++; return Result{}, nil })
	m := mustMulti(t, Options{Engines: []Engine{e}})
	scanString(t, m, "x")
	scanString(t, m, "x")
	if n != 2 {
		t.Fatalf("calls %d", n)
	}
	if _, err := NewMulti(Options{}); err == nil {
		t.Fatal("no engines accepted")
	}
	if _, err := NewMulti(Options{Engines: []Engine{e, e}}); err == nil {
		t.Fatal("duplicate names accepted")
	}
}

func TestCancelled(t *testing.T) {
	a := newFake("a")
	a.delay = time.Minute
	m := mustMulti(t, Options{Engines: []Engine{a}})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := m.Scan(ctx, strings.NewReader("x"), 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: %v", err)
	}
	if st := m.States()[0].Breaker; st != Closed {
		t.Fatalf("a cancelled scan counted against the engine: %v", st)
	}
}

func TestConcurrentScans(t *testing.T) {
	a, b := newFake("a"), newFake("b")
	m := mustMulti(t, Options{Engines: []Engine{a, b}, Mode: Quorum})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				s := fmt.Sprintf("msg %d %d", i, j)
				if j%4 == 0 {
					s += " VIRUS"
				}
				v, err := scanString(t, m, s)
				if err != nil || v.Infected != (j%4 == 0) {
					t.Errorf("%s: %+v %v", s, v, err)
				}
			}
		})
	}
	wg.Wait()
}
