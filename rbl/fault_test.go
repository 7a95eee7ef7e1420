package rbl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// harness is a checker under test with its metrics and clock.
type harness struct {
	*Checker
	m     *memMetrics
	clock *fakeClock
}

// newHarness builds a checker with no background health check and a
// clock the test moves; fill in Resolvers and Lists in cfg.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{m: newMemMetrics(), clock: newFakeClock()}
	cfg.Metrics = h.m
	cfg.HealthInterval = -1
	if cfg.LookupNonPublic == nil {
		// The tests ask about documentation addresses; a test of the
		// non-public rule passes an empty, non-nil slice.
		cfg.LookupNonPublic = TestNetworks()
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = time.Second // generous: a loaded machine must not turn a reply into a timeout
	}
	if cfg.ListTimeout == 0 {
		cfg.ListTimeout = 5 * time.Second
	}
	c, err := NewChecker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.now = h.clock.Now
	t.Cleanup(func() { c.Close() })
	h.Checker = c
	return h
}

func blList() List {
	return List{Name: "bl", Zone: "bl.test", Score: 1, FailScore: 0.5, Codes: []Code{{Match: "127.0.0.2", Name: "spam", Score: 4}}}
}

func (h *harness) mustStatus(t *testing.T, list, target string, want Status) Answer {
	t.Helper()
	a := h.Lookup(context.Background(), list, target)
	if a.Status != want {
		t.Fatalf("%s in %s: status %s (err %v), want %s", target, list, a.Status, a.Err, want)
	}
	if want == Unknown && a.Err == nil {
		t.Fatalf("%s in %s: unknown without an error", target, list)
	}
	return a
}

func TestFaultsAreUnknown(t *testing.T) {
	tests := []struct {
		mode   string
		want   error
		reason string
	}{
		{modeSilent, ErrTimeout, "timeout"},
		{modeServFail, ErrServFail, "servfail"},
		{modeRefused, ErrRefused, "refused"},
		{modeHijack, ErrBadAnswer, "bad-answer"},
		{modeQueryRefuse, ErrQueryRefused, "query-refused"},
		// Replies that are not answers to the A question: unknown, never
		// "not listed" (and never a listing either).
		{modeAAAA, ErrNotAnswer, "not-answer"},
		{modeCNAMEChain, ErrNotAnswer, "not-answer"},
		{modeCNAMELoop, ErrNotAnswer, "not-answer"},
		{modeTXTOnly, ErrNotAnswer, "not-answer"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			f := startFakeDNS(t)
			f.list("1.2.0.192.bl.test", "127.0.0.2")
			f.setMode(tc.mode)
			h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()}})
			a := h.mustStatus(t, "bl", "192.0.2.1", Unknown)
			var le *LookupError
			if !errors.Is(a.Err, tc.want) || !errors.As(a.Err, &le) || le.Resolver != f.Addr {
				t.Fatalf("err = %v, want %v via %s", a.Err, tc.want, f.Addr)
			}
			if got := h.m.get("portcullis_rbl_unknown_total", "list", "bl", "reason", tc.reason); got != 1 {
				t.Fatalf("unknown counter = %v, want 1", got)
			}
			if got := h.m.get("portcullis_rbl_resolver_errors_total", "resolver", f.Addr, "reason", tc.reason); got != 1 {
				t.Fatalf("resolver error counter = %v, want 1", got)
			}
			// Unknown is not cached: the next message asks again.
			before := f.total()
			h.mustStatus(t, "bl", "192.0.2.1", Unknown)
			if f.total() == before {
				t.Fatal("an unknown answer was cached")
			}

			// Through the filter: a visible FAIL symbol, never a clean pass.
			fs := h.Filters()
			if len(fs) != 1 || fs[0].Name() != ConnectFilterName {
				t.Fatalf("filters = %v", fs)
			}
			m := filter.NewMessage(filter.Envelope{ClientIP: mustAddr("192.0.2.1")}, nil, 0, filter.Limits{})
			res, err := fs[0].Check(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Symbols) != 1 || res.Symbols[0].Name != "RBL_BL_FAIL" || res.Symbols[0].Score != 0.5 ||
				!strings.Contains(res.Symbols[0].Detail, "192.0.2.1 unknown") {
				t.Fatalf("symbols = %v", res.Symbols)
			}
		})
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	f := startFakeDNS(t)
	f.list("1.2.0.192.bl.test", "127.0.0.2")
	f.set(func(f *fakeDNS) { f.txt["1.2.0.192.bl.test."] = "listed for spam" })
	f.setMode(modeTruncate)
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()}})
	a := h.mustStatus(t, "bl", "192.0.2.1", Listed)
	if a.Reason != "listed for spam" {
		t.Fatalf("reason %q", a.Reason)
	}
	if f.tcpQueries.Load() != 2 || f.udpQueries.Load() != 2 { // A and TXT, each UDP then TCP
		t.Fatalf("udp %d tcp %d queries", f.udpQueries.Load(), f.tcpQueries.Load())
	}
}

func TestFailoverAndReturn(t *testing.T) {
	primary, secondary := startFakeDNS(t), startFakeDNS(t)
	for _, f := range []*fakeDNS{primary, secondary} {
		for i := range 20 {
			f.list(fmt.Sprintf("%d.2.0.192.bl.test", i), "127.0.0.2")
		}
	}
	h := newHarness(t, Config{
		Resolvers: []string{primary.Addr, secondary.Addr}, Lists: []List{blList()},
		MaxFailures: 2, DownFor: time.Minute, MinTTL: time.Second, MaxTTL: time.Second,
	})
	h.mustStatus(t, "bl", "192.0.2.0", Listed)
	if secondary.total() != 0 {
		t.Fatal("secondary asked while the primary works")
	}

	// The primary goes silent mid-run: every lookup still gets an answer,
	// from the secondary, first after a timeout each, then (after
	// MaxFailures) without asking the primary at all.
	primary.setMode(modeSilent)
	for i := 1; i <= 5; i++ {
		a := h.mustStatus(t, "bl", fmt.Sprintf("192.0.2.%d", i), Listed)
		if a.Cached {
			t.Fatal("cached")
		}
	}
	if got := h.m.get("portcullis_rbl_failovers_total", "resolver", primary.Addr); got != 2 {
		t.Fatalf("failovers from primary = %v, want 2", got)
	}
	if got := h.m.get("portcullis_rbl_resolver_errors_total", "resolver", primary.Addr, "reason", "timeout"); got != 2 {
		t.Fatalf("primary timeouts = %v, want 2", got)
	}
	if got := h.m.get("portcullis_rbl_resolver_up", "resolver", primary.Addr); got != 0 {
		t.Fatalf("primary up gauge = %v", got)
	}
	if n := primary.queries("3.2.0.192.bl.test"); n != 0 {
		t.Fatalf("primary asked %d times while out of rotation", n)
	}
	if h.m.observed("portcullis_rbl_resolver_seconds", "resolver", secondary.Addr) == 0 {
		t.Fatal("no latency observed for the secondary")
	}
	health := h.Health()
	if health.Resolvers[0].Up || !strings.Contains(health.Resolvers[0].Problem, "failures in a row") ||
		health.Resolvers[0].Failovers != 2 || !health.Resolvers[1].Up {
		t.Fatalf("health = %+v", health.Resolvers)
	}

	// The primary recovers; the health check returns it to rotation at once.
	primary.setMode(modeNormal)
	health = h.CheckHealth(context.Background())
	if !health.Resolvers[0].Up || health.Checked.IsZero() {
		t.Fatalf("after health check: %+v", health.Resolvers[0])
	}
	before := secondary.total()
	h.mustStatus(t, "bl", "192.0.2.6", Listed)
	if secondary.total() != before || primary.queries("6.2.0.192.bl.test") == 0 {
		t.Fatal("lookups did not return to the primary")
	}

	// Without a health check, a resolver out of rotation is tried again
	// once DownFor has passed.
	primary.setMode(modeSilent)
	h.mustStatus(t, "bl", "192.0.2.7", Listed)
	h.mustStatus(t, "bl", "192.0.2.8", Listed)
	primary.setMode(modeNormal)
	h.mustStatus(t, "bl", "192.0.2.9", Listed)
	if primary.queries("9.2.0.192.bl.test") != 0 {
		t.Fatal("primary asked before DownFor passed")
	}
	h.clock.Advance(time.Minute)
	h.mustStatus(t, "bl", "192.0.2.10", Listed)
	if primary.queries("10.2.0.192.bl.test") == 0 {
		t.Fatal("primary not retried after DownFor")
	}
}

func TestAllResolversDown(t *testing.T) {
	a, b := startFakeDNS(t), startFakeDNS(t)
	a.setMode(modeServFail)
	b.setMode(modeSilent)
	h := newHarness(t, Config{Resolvers: []string{a.Addr, b.Addr}, Lists: []List{blList()}, MaxFailures: 1})
	ans := h.mustStatus(t, "bl", "192.0.2.1", Unknown)
	if !errors.Is(ans.Err, ErrTimeout) {
		t.Fatalf("err = %v, want the last resolver's timeout", ans.Err)
	}
	// Both out of rotation: the next lookup fails without asking either
	// (no timeout to wait for), still unknown.
	asked := a.total() + b.total()
	ans = h.mustStatus(t, "bl", "192.0.2.2", Unknown)
	if !errors.Is(ans.Err, ErrNoResolver) || a.total()+b.total() != asked {
		t.Fatalf("err = %v, %d queries; want ErrNoResolver without a query", ans.Err, a.total()+b.total()-asked)
	}
}

func TestHealthCheckCatchesHijack(t *testing.T) {
	hijacker, good := startFakeDNS(t), startFakeDNS(t)
	for _, f := range []*fakeDNS{hijacker, good} {
		f.list("1.2.0.192.bl.test", "127.0.0.2")
	}
	h := newHarness(t, Config{Resolvers: []string{hijacker.Addr, good.Addr}, Lists: []List{blList()}})
	hijacker.setMode(modeHijack)
	health := h.CheckHealth(context.Background())
	p := health.Resolvers[0].Lists["bl"]
	if !strings.Contains(p, "127.0.0.2") && !strings.Contains(p, "NXDOMAIN hijack") {
		t.Fatalf("hijacker health = %+v", health.Resolvers[0])
	}
	if health.Resolvers[0].Up || !health.Resolvers[1].Up {
		t.Fatalf("health = %+v", health.Resolvers)
	}
	if got := h.m.get("portcullis_rbl_health_checks_total", "resolver", hijacker.Addr, "result", "fail"); got != 1 {
		t.Fatalf("health check failures = %v", got)
	}
	h.mustStatus(t, "bl", "192.0.2.1", Listed)
	if hijacker.queries("1.2.0.192.bl.test") != 0 {
		t.Fatal("the hijacking resolver was asked")
	}

	// A resolver that answers 127.0.0.1 as listed (NXDOMAIN rewritten
	// inside 127/8, or a list listing everything) fails too.
	good.list("1.0.0.127.bl.test", "127.0.0.2")
	hijacker.setMode(modeNormal)
	hijacker.list("1.0.0.127.bl.test", "127.0.0.2")
	health = h.CheckHealth(context.Background())
	for _, r := range health.Resolvers {
		if !strings.Contains(r.Lists["bl"], "NXDOMAIN hijack or a list that lists everything") {
			t.Fatalf("resolver %s: %+v", r.Addr, r)
		}
	}
	// No resolver passes for the list: its lookups are unknown.
	h.clock.Advance(time.Hour) // past the cache
	ans := h.mustStatus(t, "bl", "192.0.2.1", Unknown)
	if !errors.Is(ans.Err, ErrNoResolver) || !errors.Is(ans.Err, ErrUnhealthy) {
		t.Fatalf("err = %v", ans.Err)
	}
}

func TestReadyAfterFirstHealthCheck(t *testing.T) {
	f := startFakeDNS(t)
	c, err := NewChecker(Config{Resolvers: []string{f.Addr}, Lists: []List{blList()}, HealthInterval: time.Hour, LookupNonPublic: TestNetworks()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.After(10 * time.Second)
	for c.Ready() != nil {
		select {
		case <-deadline:
			t.Fatal("not ready after the first health check")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if c.Health().Checked.IsZero() || f.queries("2.0.0.127.bl.test") == 0 {
		t.Fatal("ready without a health check")
	}
}

func TestBackoffOnRefusal(t *testing.T) {
	f := startFakeDNS(t)
	f.setMode(modeQueryRefuse)
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()},
		BackoffAfter: 3, Backoff: time.Minute, MaxBackoff: 3 * time.Minute})
	for i := range 3 {
		h.mustStatus(t, "bl", fmt.Sprintf("192.0.2.%d", i), Unknown)
	}
	asked := f.total()
	for i := range 10 {
		a := h.mustStatus(t, "bl", fmt.Sprintf("192.0.2.%d", 10+i), Unknown)
		if !errors.Is(a.Err, ErrBackoff) {
			t.Fatalf("err = %v, want ErrBackoff", a.Err)
		}
	}
	if f.total() != asked {
		t.Fatalf("a backed-off list was queried %d times", f.total()-asked)
	}
	if got := h.m.get("portcullis_rbl_backoffs_total", "list", "bl"); got != 1 {
		t.Fatalf("backoffs = %v", got)
	}
	if hl := h.Health().Lists[0]; !hl.BackedOff || hl.Refusals != 3 || hl.Unknown != 13 {
		t.Fatalf("list health = %+v", hl)
	}
	// A refusal does not take the resolver out: it is the list's doing.
	if !h.Health().Resolvers[0].Up {
		t.Fatal("resolver taken out for the list's refusals")
	}
	// After the back-off the list is asked again; still refusing backs it
	// off for twice as long.
	h.clock.Advance(time.Minute)
	for i := range 3 {
		h.mustStatus(t, "bl", fmt.Sprintf("192.0.2.%d", 30+i), Unknown)
	}
	h.clock.Advance(time.Minute)
	if a := h.mustStatus(t, "bl", "192.0.2.40", Unknown); !errors.Is(a.Err, ErrBackoff) {
		t.Fatalf("second back-off not doubled: %v", a.Err)
	}
	// The list answers again: back to normal.
	h.clock.Advance(time.Minute)
	f.setMode(modeNormal)
	h.mustStatus(t, "bl", "192.0.2.41", NotListed)
}

func TestCache(t *testing.T) {
	f := startFakeDNS(t)
	f.list("1.2.0.192.bl.test", "127.0.0.2")
	f.set(func(f *fakeDNS) { f.ttl = 300 })
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList()},
		MinTTL: time.Minute, MaxTTL: 200 * time.Second, CacheSize: 3})
	h.mustStatus(t, "bl", "192.0.2.1", Listed)
	asked := f.total()
	if a := h.mustStatus(t, "bl", "192.0.2.1", Listed); !a.Cached || f.total() != asked {
		t.Fatal("positive answer not cached")
	}
	// Negative answers are cached for the SOA minimum (600 s TTL, 120 s
	// minimum: 120 s).
	h.mustStatus(t, "bl", "192.0.2.99", NotListed)
	asked = f.total()
	if a := h.mustStatus(t, "bl", "192.0.2.99", NotListed); !a.Cached || f.total() != asked {
		t.Fatal("negative answer not cached")
	}
	h.clock.Advance(121 * time.Second)
	if a := h.mustStatus(t, "bl", "192.0.2.99", NotListed); a.Cached {
		t.Fatal("negative answer outlived its TTL")
	}
	// The positive TTL of 300 s is clamped to MaxTTL 200 s.
	h.clock.Advance(80 * time.Second)
	if a := h.mustStatus(t, "bl", "192.0.2.1", Listed); a.Cached {
		t.Fatal("TTL not clamped to MaxTTL")
	}
	// A TTL of 1 s is raised to MinTTL.
	f.set(func(f *fakeDNS) { f.ttl = 1 })
	f.list("5.2.0.192.bl.test", "127.0.0.2")
	h.mustStatus(t, "bl", "192.0.2.5", Listed)
	h.clock.Advance(30 * time.Second)
	if a := h.mustStatus(t, "bl", "192.0.2.5", Listed); !a.Cached {
		t.Fatal("TTL not raised to MinTTL")
	}
	// Bounded: more names than CacheSize evict the least recently used.
	for i := range 10 {
		h.mustStatus(t, "bl", fmt.Sprintf("192.0.2.%d", 100+i), NotListed)
	}
	if n := h.cache.len(); n != 3 {
		t.Fatalf("cache holds %d entries, want 3", n)
	}
	if a := h.mustStatus(t, "bl", "192.0.2.5", Listed); a.Cached {
		t.Fatal("evicted entry still cached")
	}
	if h.m.get("portcullis_rbl_cache_total", "result", "hit") == 0 || h.m.get("portcullis_rbl_cache_total", "result", "miss") == 0 {
		t.Fatal("cache counters not kept")
	}
}

func TestSingleflight(t *testing.T) {
	f := startFakeDNS(t)
	f.list("1.2.0.192.bl.test", "127.0.0.2")
	f.set(func(f *fakeDNS) { f.mode, f.delay = modeSlow, 200*time.Millisecond })
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{{Zone: "bl.test", NoTXT: true}}, QueryTimeout: 5 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := h.Lookup(context.Background(), "bl.test", "192.0.2.1"); a.Status != Listed {
				errs <- fmt.Sprintf("%s %v", a.Status, a.Err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := f.queries("1.2.0.192.bl.test"); n != 1 {
		t.Fatalf("%d queries for one name asked 50 times at once", n)
	}
}

func TestDeadlines(t *testing.T) {
	f := startFakeDNS(t)
	f.setMode(modeSilent)
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{blList(), {Name: "two", Zone: "two.test"}},
		QueryTimeout: 5 * time.Second, ListTimeout: 5 * time.Second, Deadline: 300 * time.Millisecond,
		OnUnknown: filter.Tempfail})
	m := filter.NewMessage(filter.Envelope{ClientIP: mustAddr("192.0.2.1")}, nil, 0, filter.Limits{})
	start := time.Now()
	res, err := h.Filters()[0].Check(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("check took %v with a 300 ms deadline", d)
	}
	var names []string
	for _, s := range res.Symbols {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "RBL_BL_FAIL RBL_TWO_FAIL" || res.Action != filter.Tempfail {
		t.Fatalf("result = %+v", res)
	}

	// A list's own timeout bounds its lookup, failover included.
	h2 := newHarness(t, Config{Resolvers: []string{f.Addr, f.Addr}, Lists: []List{{Zone: "bl.test", Timeout: 200 * time.Millisecond}},
		QueryTimeout: 5 * time.Second})
	start = time.Now()
	a := h2.mustStatus(t, "bl.test", "192.0.2.1", Unknown)
	if !errors.Is(a.Err, ErrTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("list timeout: %v after %v", a.Err, time.Since(start))
	}

	// A cancelled message stops waiting at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a := h2.Lookup(ctx, "bl.test", "192.0.2.9"); a.Status != Unknown || !errors.Is(a.Err, context.Canceled) {
		t.Fatalf("cancelled: %s %v", a.Status, a.Err)
	}
}

// A waiter does not inherit the cancellation of the caller whose query it
// was sharing: it asks again under its own context.
func TestSingleflightLeaderCancelled(t *testing.T) {
	f := startFakeDNS(t)
	f.list("1.2.0.192.bl.test", "127.0.0.2")
	f.set(func(f *fakeDNS) { f.mode, f.delay = modeSlow, 300*time.Millisecond })
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, Lists: []List{{Zone: "bl.test", NoTXT: true}}, QueryTimeout: 5 * time.Second})
	leaderCtx, cancel := context.WithCancel(context.Background())
	leader := make(chan Answer, 1)
	go func() { leader <- h.Lookup(leaderCtx, "bl.test", "192.0.2.1") }()
	// The waiter joins once the leader's query is on the wire.
	for f.queries("1.2.0.192.bl.test") == 0 {
		time.Sleep(time.Millisecond) // polling the fake server's counter
	}
	waiter := make(chan Answer, 1)
	go func() { waiter <- h.Lookup(context.Background(), "bl.test", "192.0.2.1") }()
	for h.flight.waiting.Load() == 0 {
		time.Sleep(time.Millisecond) // until the waiter has joined the flight
	}
	cancel()
	if a := <-leader; a.Status != Unknown || !errors.Is(a.Err, context.Canceled) {
		t.Fatalf("leader: %s %v", a.Status, a.Err)
	}
	if a := <-waiter; a.Status != Listed {
		t.Fatalf("waiter: %s %v", a.Status, a.Err)
	}
}
