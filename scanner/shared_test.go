package scanner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mapShared is a SharedCache in a map; err fails every call; block makes
// Get wait for its context.
type mapShared struct {
	mu    sync.Mutex
	m     map[CacheKey]Result
	err   error
	block bool
	gets  atomic.Int32
	puts  atomic.Int32
}

func (s *mapShared) Get(ctx context.Context, k CacheKey) (Result, bool, error) {
	s.gets.Add(1)
	s.mu.Lock()
	err, block := s.err, s.block
	r, ok := s.m[k]
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return Result{}, false, ctx.Err()
	}
	return r, ok, err
}

func (s *mapShared) Put(ctx context.Context, k CacheKey, r Result) error {
	s.puts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.m == nil {
		s.m = map[CacheKey]Result{}
	}
	s.m[k] = r
	return nil
}

func (s *mapShared) set(err error, block bool) {
	s.mu.Lock()
	s.err, s.block = err, block
	s.mu.Unlock()
}

// A result one node scanned is another node's cached answer; a new
// signature version scans again.
func TestSharedCacheAcrossNodes(t *testing.T) {
	sc := &mapShared{}
	a, b := newFake("clamd-1"), newFake("clamd-1")
	opts := func(e Engine) Options {
		return Options{Engines: []Engine{e}, SharedCache: sc, Cache: CacheConfig{VersionTTL: time.Nanosecond}}
	}
	ma, mb := mustMulti(t, opts(a)), mustMulti(t, opts(b))
	const att = "attachment with a VIRUS"
	if v, err := scanString(t, ma, att); err != nil || !v.Infected || v.Shared != 0 {
		t.Fatalf("node a: %+v, %v", v, err)
	}
	v, err := scanString(t, mb, att)
	if err != nil || !v.Infected || v.Shared != 1 || v.Cached != 1 {
		t.Fatalf("node b: %+v, %v; want a shared cached detection", v, err)
	}
	if a.calls.Load() != 1 || b.calls.Load() != 0 {
		t.Fatalf("engine scans a=%d b=%d, want 1 and 0", a.calls.Load(), b.calls.Load())
	}
	// b's own cache holds it now: no second shared Get.
	gets := sc.gets.Load()
	if v, _ := scanString(t, mb, att); v.Shared != 0 || v.Cached != 1 || sc.gets.Load() != gets {
		t.Fatalf("second scan on b: %+v, gets %d→%d; want b's own cache", v, gets, sc.gets.Load())
	}
	b.version.Store("2")
	if v, _ := scanString(t, mb, att); v.Cached != 0 || b.calls.Load() != 1 {
		t.Fatalf("after the version change: %+v, b scans %d; want a fresh scan", v, b.calls.Load())
	}
}

// A failing shared cache costs one timeout, then is left alone until its
// retry time; the engines scan all along, and the outage is a metric.
func TestSharedCacheDown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		block bool
	}{{"error", errors.New("nats: no responders"), false}, {"stall", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &mapShared{}
			sc.set(tc.err, tc.block)
			clk := &clock{t: time.Unix(1e9, 0)}
			met := &recMetrics{}
			e := newFake("clamd-1")
			m := mustMulti(t, Options{Engines: []Engine{e}, SharedCache: sc, SharedTimeout: 20 * time.Millisecond,
				SharedRetry: time.Minute, Cache: CacheConfig{Entries: -1}, Metrics: met, now: clk.now})
			if met.get("portcullis_scanner_shared_cache_up") != 1 {
				t.Fatal("shared cache not reported up at start")
			}
			v, err := scanString(t, m, "a VIRUS")
			if err != nil || !v.Infected || e.calls.Load() != 1 {
				t.Fatalf("%+v, %v, scans %d: want a local detection", v, err, e.calls.Load())
			}
			if met.get("portcullis_scanner_shared_cache_errors_total", "op", "get") != 1 || met.get("portcullis_scanner_shared_cache_up") != 0 {
				t.Fatalf("outage not visible: %v", met.m)
			}
			gets := sc.gets.Load()
			if v, err := scanString(t, m, "clean"); err != nil || !v.Clean() || sc.gets.Load() != gets || sc.puts.Load() != 0 {
				t.Fatalf("%+v, %v, gets %d→%d puts %d: want a local scan without the shared cache", v, err, gets, sc.gets.Load(), sc.puts.Load())
			}
			sc.set(nil, false)
			clk.add(time.Minute)
			if _, err := scanString(t, m, "clean"); err != nil || sc.gets.Load() != gets+1 || sc.puts.Load() != 1 {
				t.Fatalf("after the retry time: %v, gets %d puts %d; want it asked again", err, sc.gets.Load(), sc.puts.Load())
			}
			if met.get("portcullis_scanner_shared_cache_up") != 1 {
				t.Fatal("shared cache not reported back up")
			}
		})
	}
}

// fakeRates is a FleetRates whose counts the test sets.
type fakeRates struct {
	mu       sync.Mutex
	rates    map[[2]string]FleetRate
	recorded map[[2]string][2]int64
}

func (f *fakeRates) Record(engine, version string, hit bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recorded == nil {
		f.recorded = map[[2]string][2]int64{}
	}
	c := f.recorded[[2]string{engine, version}]
	c[0]++
	if hit {
		c[1]++
	}
	f.recorded[[2]string{engine, version}] = c
}

func (f *fakeRates) Rate(engine, version string) (FleetRate, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rates[[2]string{engine, version}]
	return r, ok
}

func (f *fakeRates) set(engine, version string, r FleetRate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rates == nil {
		f.rates = map[[2]string]FleetRate{}
	}
	f.rates[[2]string{engine, version}] = r
}

// The fleet's rate at the engine's signature version makes a detection
// suspect on a node whose own window has seen nothing unusual.
func TestFleetRatesMakeSuspect(t *testing.T) {
	fr := &fakeRates{}
	met := &recMetrics{}
	e := newFake("clamd-1")
	m := mustMulti(t, Options{Engines: []Engine{e}, FleetRates: fr, Cache: CacheConfig{Entries: -1, VersionTTL: time.Nanosecond}, Metrics: met})

	fr.set("clamd-1", "1", FleetRate{Scans: 19, Hits: 19, Nodes: 2}) // below MinScans (20)
	if v, _ := scanString(t, m, "a VIRUS 1"); !v.Infected {
		t.Fatalf("too few fleet scans to judge, but %+v", v)
	}
	fr.set("clamd-1", "1", FleetRate{Scans: 100, Hits: 10, Nodes: 3}) // 0.10 < 4 × 0.05
	if v, _ := scanString(t, m, "a VIRUS 2"); !v.Infected {
		t.Fatalf("fleet rate within bounds, but %+v", v)
	}
	fr.set("clamd-1", "1", FleetRate{Scans: 40, Hits: 30, Nodes: 3})
	v, err := scanString(t, m, "a VIRUS 3")
	if err != nil || v.Infected || !v.Unconfirmed || len(v.Detections) != 1 || !v.Detections[0].Suspect || !v.Detections[0].Fleet || v.Detections[0].Rate != 0.75 {
		t.Fatalf("%+v, %v: want an unconfirmed detection, suspect by the fleet at rate 0.75", v, err)
	}
	if met.get("portcullis_scanner_fleet_suspect", "engine", "clamd-1") != 1 || met.get("portcullis_scanner_suspect", "engine", "clamd-1") != 0 {
		t.Fatalf("gauges: %v", met.m)
	}
	if st := m.States()[0]; !st.FleetSuspect || st.Suspect {
		t.Fatalf("state %+v, want suspect by the fleet only", st)
	}
	// Another signature version is judged by its own counts.
	e.version.Store("2")
	if v, _ := scanString(t, m, "a VIRUS 4"); !v.Infected {
		t.Fatalf("version 2 has no fleet counts, but %+v", v)
	}
	if met.get("portcullis_scanner_fleet_suspect", "engine", "clamd-1") != 0 {
		t.Fatal("fleet suspect gauge not cleared for the new version")
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if got := fr.recorded[[2]string{"clamd-1", "1"}]; got != [2]int64{3, 3} {
		t.Fatalf("recorded for version 1: %v, want 3 scans 3 hits", got)
	}
	if got := fr.recorded[[2]string{"clamd-1", "2"}]; got != [2]int64{1, 1} {
		t.Fatalf("recorded for version 2: %v", got)
	}
}

// A shared-cache answer from a version the fleet doubts is doubted too,
// and is not counted again (the node that scanned it did).
func TestFleetRatesOnSharedAnswer(t *testing.T) {
	fr := &fakeRates{}
	sc := &mapShared{}
	ea, eb := newFake("clamd-1"), newFake("clamd-1")
	opts := func(e Engine) Options {
		return Options{Engines: []Engine{e}, SharedCache: sc, FleetRates: fr}
	}
	ma, mb := mustMulti(t, opts(ea)), mustMulti(t, opts(eb))
	if v, _ := scanString(t, ma, "a VIRUS"); !v.Infected {
		t.Fatalf("node a: %+v", v)
	}
	fr.set("clamd-1", "1", FleetRate{Scans: 50, Hits: 50, Nodes: 1})
	v, _ := scanString(t, mb, "a VIRUS")
	if v.Shared != 1 || v.Infected || !v.Unconfirmed {
		t.Fatalf("node b: %+v; want the shared answer, unconfirmed", v)
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if got := fr.recorded[[2]string{"clamd-1", "1"}]; got != [2]int64{1, 1} {
		t.Fatalf("recorded %v, want the one real scan", got)
	}
}

// An engine without a signature version is neither shared nor counted.
func TestSharedNeedsVersion(t *testing.T) {
	fr := &fakeRates{}
	sc := &mapShared{}
	calls := 0
	eng := EngineFunc("cmd", func(context.Context, io.Reader) (Result, error) { calls++; return Result{}, nil })
	m := mustMulti(t, Options{Engines: []Engine{eng}, SharedCache: sc, FleetRates: fr})
	for range 2 {
		if _, err := scanString(t, m, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 || sc.gets.Load() != 0 || sc.puts.Load() != 0 || len(fr.recorded) != 0 {
		t.Fatalf("calls %d gets %d puts %d recorded %v", calls, sc.gets.Load(), sc.puts.Load(), fr.recorded)
	}
}

// noVersion answers scans but cannot tell its signature version, as
// clamd with unofficial databases only.
type noVersion struct{ Engine }

func (noVersion) Version(context.Context) (string, error) {
	return "", errors.New("clamd: no signature version")
}

// An engine that cannot tell its version while sharing is asked for
// says so in the log, once.
func TestSharedVersionUnknownLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	clk := &clock{t: time.Unix(1e9, 0)}
	m := mustMulti(t, Options{Engines: []Engine{noVersion{newFake("clamd-1")}}, SharedCache: &mapShared{}, Logger: log, now: clk.now})
	for range 3 {
		if _, err := scanString(t, m, "x"); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Minute)
	}
	if n := strings.Count(buf.String(), "results are not shared"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, buf.String())
	}
}
