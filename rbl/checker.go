package rbl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/portcullis-mail/portcullis/filter"
)

// Config configures a Checker. Zero values mean the documented defaults.
type Config struct {
	// Resolvers are recursive resolvers ("host:port", port 53 when
	// omitted) in failover order: primary, secondary, tertiary. Required.
	Resolvers []string
	// Lists to query. Each needs an agreement with its operator; none is
	// on by default (see the presets).
	Lists []List

	// QueryTimeout bounds one attempt at one resolver. Default 1 s.
	QueryTimeout time.Duration
	// ListTimeout bounds one lookup, failover included, unless the list
	// sets its own. Default 2.5 s.
	ListTimeout time.Duration
	// Deadline bounds all lookups of one message at one stage. Default 5 s.
	Deadline time.Duration
	// MaxParallel bounds the lookups in flight for one message. Default 32.
	MaxParallel int
	// MaxInFlight bounds the queries in flight from this checker to all
	// resolvers together, so that a burst of messages does not overflow a
	// resolver's socket buffer and turn into timeouts. Default 128.
	MaxInFlight int

	// MaxFailures is how many failures in a row take a resolver out of
	// rotation for DownFor (default 3 and 30 s); the health check brings
	// it back as soon as it passes.
	MaxFailures int
	DownFor     time.Duration
	// HealthInterval is the period of the RFC 5782 health check of every
	// resolver. Default 1 min; negative disables the background check
	// (CheckHealth still runs one).
	HealthInterval time.Duration

	// BackoffAfter is how many "query refused" lookups in a row back a
	// list off (default 3); it is then not queried for Backoff (default
	// 1 min), doubling while it keeps refusing up to MaxBackoff (30 min).
	BackoffAfter int
	Backoff      time.Duration
	MaxBackoff   time.Duration

	// CacheSize bounds the cache in entries. Default 10,000.
	CacheSize int
	// MinTTL and MaxTTL clamp how long answers are cached. Defaults 30 s
	// and 1 h.
	MinTTL, MaxTTL time.Duration

	// MaxLinks bounds the link hosts (domains and numeric hosts) checked
	// per message; beyond it the rbl-data filter adds RBL_LINKS_CAPPED.
	// Default 50.
	MaxLinks int
	// TrustedNetworks are our own relays: Received headers whose sending
	// address is here are skipped, and the first MaxReceived public
	// sending addresses below them are checked against lists with the
	// ReceivedIPs target. Empty: Received headers are not checked.
	TrustedNetworks []netip.Prefix
	// MaxReceived bounds the Received hops checked. Default 1.
	MaxReceived int

	// LookupNonPublic are address ranges looked up although they are not
	// public. By default an address that is not public (see Public:
	// loopback, private, CGNAT, link-local, documentation, benchmarking,
	// reserved) is never sent to a DNS list: a public list cannot know it
	// and the query leaks it. The client address then gets the symbol
	// RBL_LOCAL (LocalScore) instead, and so does a numeric link host.
	// Tests against a local rbldnsd set 127.0.0.0/8 and the documentation
	// ranges here; a list of your own that lists internal networks sets
	// those.
	LookupNonPublic []netip.Prefix
	// LocalScore is the score of the RBL_LOCAL symbol. Default 0: a
	// visible trace, no verdict.
	LocalScore float64

	// OnUnknown is the action a message demands when a lookup is unknown.
	// The default, Accept, demands nothing: the LIST_FAIL symbol (with the
	// list's FailScore) is the visible trace. Tempfail makes the sender
	// retry later.
	OnUnknown filter.Action

	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards
}

func (c *Config) defaults() error {
	if len(c.Resolvers) == 0 {
		return fmt.Errorf("%w: no resolvers", ErrConfig)
	}
	if len(c.Lists) == 0 {
		return fmt.Errorf("%w: no lists", ErrConfig)
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setInt := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	setDur(&c.QueryTimeout, time.Second)
	setDur(&c.ListTimeout, 2500*time.Millisecond)
	setDur(&c.Deadline, 5*time.Second)
	setDur(&c.DownFor, 30*time.Second)
	setDur(&c.Backoff, time.Minute)
	setDur(&c.MaxBackoff, 30*time.Minute)
	setDur(&c.MinTTL, 30*time.Second)
	setDur(&c.MaxTTL, time.Hour)
	if c.HealthInterval == 0 {
		c.HealthInterval = time.Minute
	}
	setInt(&c.MaxParallel, 32)
	setInt(&c.MaxInFlight, 128)
	setInt(&c.MaxFailures, 3)
	setInt(&c.BackoffAfter, 3)
	setInt(&c.CacheSize, 10000)
	setInt(&c.MaxLinks, 50)
	setInt(&c.MaxReceived, 1)
	if c.MinTTL > c.MaxTTL {
		return fmt.Errorf("%w: MinTTL %s above MaxTTL %s", ErrConfig, c.MinTTL, c.MaxTTL)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Metrics = filter.OrNop(c.Metrics)
	return nil
}

// Status is the outcome of a lookup. The zero value is Unknown, so an
// Answer nobody filled in is never "not listed".
type Status int

const (
	Unknown   Status = iota // no usable answer: timeout, SERVFAIL, refused, bad answer...
	NotListed               // NXDOMAIN or no A record
	Listed                  // an A record in 127.0.0.0/8 that is not a refused code
)

func (s Status) String() string {
	switch s {
	case NotListed:
		return "not-listed"
	case Listed:
		return "listed"
	}
	return "unknown"
}

// Answer is the outcome of one lookup in one list.
type Answer struct {
	List    string          // list name
	Target  string          // the address or domain asked about
	Query   string          // the DNS name queried
	Status  Status          //
	Codes   []netip.Addr    // the A records of a listing
	Reason  string          // the TXT record of a listing, if any
	Symbols []filter.Symbol // a listing's symbols, from the list's codes
	Err     error           // why the status is Unknown (a *LookupError)
	Cached  bool            // answered from the cache
	Local   bool            // answered from the list's zone in memory (List.Local)
}

// listState is a list and its back-off.
type listState struct {
	*List
	mu                sync.Mutex
	streak            int           // refused lookups in a row
	backoff           time.Duration // the next back-off
	until             time.Time     // backed off until then
	refusals, unknown atomic.Uint64
	// Metric labels built once: a variadic call would allocate them per
	// lookup.
	statusLabels [3][]string
}

var (
	cacheHit  = []string{"result", "hit"}
	cacheMiss = []string{"result", "miss"}
)

// Checker looks targets up in DNS lists through a resolver chain, with a
// shared cache. It is safe for concurrent use; Close stops its health
// check.
type Checker struct {
	cfg       Config
	log       *slog.Logger
	metrics   filter.Metrics
	lists     []*listState
	byName    map[string]*listState
	resolvers []*resolver
	ex        *exchanger
	cache     *cache
	flight    flights
	inflight  chan struct{} // a token per query on the wire
	now       func() time.Time

	ready   atomic.Bool
	checked atomic.Int64 // unix nanoseconds of the last health round
	stop    context.CancelFunc
	done    chan struct{}
}

// NewChecker validates cfg and starts the background health check, whose
// first round runs at once; Ready reports an error until it has finished.
func NewChecker(cfg Config) (*Checker, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := &Checker{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  cfg.Metrics,
		byName:   map[string]*listState{},
		ex:       newExchanger(cfg.QueryTimeout),
		cache:    newCache(cfg.CacheSize, cfg.MinTTL, cfg.MaxTTL),
		now:      time.Now,
		done:     make(chan struct{}),
		inflight: make(chan struct{}, cfg.MaxInFlight),
	}
	for _, addr := range cfg.Resolvers {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "53")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%w: resolver %q", ErrConfig, addr)
		}
		c.resolvers = append(c.resolvers, &resolver{addr: addr, listErr: map[string]error{}})
		c.metrics.Set("portcullis_rbl_resolver_up", 1, "resolver", addr)
	}
	for i := range cfg.Lists {
		l := cfg.Lists[i] // a copy: the caller's slice stays as given
		if err := l.prepare(); err != nil {
			return nil, err
		}
		if _, dup := c.byName[l.Name]; dup {
			return nil, fmt.Errorf("%w: two lists named %q", ErrConfig, l.Name)
		}
		if l.Timeout <= 0 {
			l.Timeout = cfg.ListTimeout
		}
		st := &listState{List: &l, backoff: cfg.Backoff}
		for s := range st.statusLabels {
			st.statusLabels[s] = []string{"list", l.Name, "status", Status(s).String()}
		}
		c.lists = append(c.lists, st)
		c.byName[l.Name] = st
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	if cfg.HealthInterval < 0 || !c.anyTestPoints() {
		c.ready.Store(true)
		close(c.done)
		return c, nil
	}
	go c.healthLoop(ctx)
	return c, nil
}

// Close stops the background health check and waits for it.
func (c *Checker) Close() error {
	c.stop()
	<-c.done
	c.ex.close()
	return nil
}

// Ready returns nil once the first health check has run (filter.Readier):
// until then the resolvers' health is not known. A list with
// RequireLocal keeps it not ready while its Local is not loaded.
func (c *Checker) Ready() error {
	if err := c.localReady(); err != nil {
		return err
	}
	if c.ready.Load() {
		return nil
	}
	return fmt.Errorf("%w: rbl health check has not completed", filter.ErrNotReady)
}

func (c *Checker) anyTestPoints() bool {
	for _, l := range c.lists {
		if l.hasTestPoints() {
			return true
		}
	}
	return false
}

func (c *Checker) healthLoop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.cfg.HealthInterval)
	defer t.Stop()
	for {
		c.CheckHealth(ctx)
		c.ready.Store(true)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Lookup asks the named list about target: an IP address for IP lists, a
// domain name for domain lists.
func (c *Checker) Lookup(ctx context.Context, list, target string) Answer {
	l, ok := c.byName[list]
	if !ok {
		return Answer{List: list, Target: target, Err: fmt.Errorf("%w: no list %q", ErrConfig, list)}
	}
	qname, err := c.query(l, target)
	if err != nil {
		// Unknown, never "not listed": a non-public address was not asked.
		return Answer{List: list, Target: target, Err: &LookupError{List: list, Name: target, Err: err}}
	}
	return c.lookup(ctx, l, target, qname)
}

// query is the DNS name that asks l about target; a non-public address
// (not in Config.LookupNonPublic) is ErrNotPublic.
func (c *Checker) query(l *listState, target string) (string, error) {
	if l.Kind == IPList {
		a, err := netip.ParseAddr(target)
		if err != nil {
			return "", fmt.Errorf("%w: %q is not an IP address", ErrConfig, target)
		}
		if !c.mayAsk(a) {
			return "", fmt.Errorf("%w: %s (%s)", ErrNotPublic, a, Range(a))
		}
		return ipQuery(a, l.Zone), nil
	}
	return domainQuery(target, l.Zone)
}

// mayAsk reports whether an address may be sent to DNS lists.
func (c *Checker) mayAsk(a netip.Addr) bool {
	a = a.Unmap()
	return Public(a) || inAny(c.cfg.LookupNonPublic, a)
}

// lookup answers from the cache or from one flight of queries shared by
// every caller asking the same name at the same time.
func (c *Checker) lookup(ctx context.Context, l *listState, target, qname string) Answer {
	if a, ok := c.local(l, target, qname); ok {
		return a
	}
	if a, ok := c.cached(l, target, qname); ok {
		return a
	}
	return c.fetch(ctx, l, target, qname)
}

// fetch is a lookup the cache could not answer.
func (c *Checker) fetch(ctx context.Context, l *listState, target, qname string) Answer {
	a := c.answer(ctx, l, target, qname)
	c.metrics.Add("portcullis_rbl_lookups_total", 1, l.statusLabels[a.Status]...)
	if a.Status == Unknown {
		l.unknown.Add(1)
		c.metrics.Add("portcullis_rbl_unknown_total", 1, "list", l.Name, "reason", reason(a.Err))
		c.log.Warn("rbl lookup unknown", "list", l.Name, "target", target, "err", a.Err)
	}
	return a
}

// cached answers from the cache alone, counting hits and misses.
func (c *Checker) cached(l *listState, target, qname string) (Answer, bool) {
	e, ok := c.cache.get(qname, c.now())
	if !ok {
		c.metrics.Add("portcullis_rbl_cache_total", 1, cacheMiss...)
		return Answer{}, false
	}
	c.metrics.Add("portcullis_rbl_cache_total", 1, cacheHit...)
	a := l.fill(Answer{List: l.Name, Target: target, Query: qname, Cached: true}, e)
	c.metrics.Add("portcullis_rbl_lookups_total", 1, l.statusLabels[a.Status]...)
	return a, true
}

func (c *Checker) answer(ctx context.Context, l *listState, target, qname string) Answer {
	a := Answer{List: l.Name, Target: target, Query: qname}
	now := c.now()
	if err := ctx.Err(); err != nil {
		a.Err = &LookupError{List: l.Name, Name: qname, Err: netErr(ctx, err)}
		return a
	}
	if err := l.backedOff(now); err != nil {
		a.Err = &LookupError{List: l.Name, Name: qname, Err: err}
		return a
	}
	e, err := c.flight.do(ctx, qname, func(ctx context.Context) (entry, error) {
		// The list's timeout is a deadline handed down, not a context
		// of its own: a lookup then costs no context and timer beyond
		// ctx's.
		return c.resolve(ctx, time.Now().Add(l.Timeout), l, qname)
	})
	if err != nil {
		if _, ok := err.(*LookupError); !ok {
			err = &LookupError{List: l.Name, Name: qname, Err: err}
		}
		a.Err = err
		return a
	}
	return l.fill(a, e)
}

// fill completes an answer from a cache entry.
func (l *listState) fill(a Answer, e entry) Answer {
	if !e.listed {
		a.Status = NotListed
		return a
	}
	a.Status, a.Codes, a.Reason = Listed, e.addrs, e.reason
	a.Symbols = l.symbols(e.addrs)
	return a
}

// backedOff returns ErrBackoff while the list is backed off.
func (l *listState) backedOff(now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.until) {
		return fmt.Errorf("%w until %s", ErrBackoff, l.until.UTC().Format(time.RFC3339))
	}
	return nil
}

// noteRefused counts a refused lookup and backs the list off when they
// keep coming; it reports whether a back-off started.
func (l *listState) noteRefused(now time.Time, after int, maxBackoff time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refusals.Add(1)
	l.streak++
	if l.streak < after {
		return false
	}
	l.until = now.Add(l.backoff)
	l.backoff = min(2*l.backoff, maxBackoff)
	l.streak = 0
	return true
}

func (l *listState) noteAnswered(first time.Duration) {
	l.mu.Lock()
	l.streak, l.backoff = 0, first
	l.mu.Unlock()
}

// resolve walks the resolver chain for one name: the first resolver that
// gives a usable answer wins; one that fails (timeout, SERVFAIL, REFUSED,
// truncation it cannot recover, an answer outside 127/8 or a refused code)
// hands over to the next.
func (c *Checker) resolve(ctx context.Context, deadline time.Time, l *listState, qname string) (entry, error) {
	var (
		lastErr  error
		lastAddr string
		failed   *resolver
	)
	for _, r := range c.resolvers {
		if ctx.Err() != nil {
			break
		}
		if !time.Now().Before(deadline) {
			if lastErr == nil {
				lastErr = fmt.Errorf("%w: the list's %s passed", ErrTimeout, l.Timeout)
			}
			break
		}
		if err := r.usable(l.Name, c.now()); err != nil {
			if lastErr == nil {
				lastErr, lastAddr = fmt.Errorf("%w: %w", ErrNoResolver, err), r.addr
			}
			continue
		}
		if failed != nil {
			failed.failovers.Add(1)
			c.metrics.Add("portcullis_rbl_failovers_total", 1, "resolver", failed.addr)
			c.log.Info("rbl resolver failover", "from", failed.addr, "to", r.addr, "list", l.Name, "err", lastErr)
		}
		e, ttl, hasTTL, err := c.ask(ctx, deadline, r, l, qname)
		if err == nil {
			l.noteAnswered(c.cfg.Backoff)
			c.cache.put(qname, e, ttl, hasTTL, c.now())
			return e, nil
		}
		lastErr, lastAddr, failed = err, r.addr, r
	}
	if lastErr == nil {
		lastErr = ErrNoResolver
		if ctx.Err() != nil {
			lastErr = netErr(ctx, ctx.Err())
		}
	}
	if errors.Is(lastErr, ErrQueryRefused) && l.noteRefused(c.now(), c.cfg.BackoffAfter, c.cfg.MaxBackoff) {
		c.metrics.Add("portcullis_rbl_backoffs_total", 1, "list", l.Name)
		c.log.Warn("rbl list backed off: it keeps refusing queries", "list", l.Name, "err", lastErr)
	}
	return entry{}, &LookupError{List: l.Name, Name: qname, Resolver: lastAddr, Err: lastErr}
}

// ask queries one resolver by deadline (the list's) and within the query
// timeout, records its latency and health, and judges the answer.
func (c *Checker) ask(ctx context.Context, deadline time.Time, r *resolver, l *listState, qname string) (entry, time.Duration, bool, error) {
	select {
	case c.inflight <- struct{}{}:
	default: // MaxInFlight queries on the wire: wait, by the deadline
		t := time.NewTimer(time.Until(deadline))
		select {
		case c.inflight <- struct{}{}:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return entry{}, 0, false, netErr(ctx, ctx.Err())
		case <-t.C:
			return entry{}, 0, false, fmt.Errorf("%w: the list's deadline passed waiting for one of %d queries in flight", ErrTimeout, cap(c.inflight))
		}
	}
	defer func() { <-c.inflight }()
	if d := time.Now().Add(c.cfg.QueryTimeout); d.Before(deadline) {
		deadline = d
	}
	start := c.now()
	r.queries.Add(1)
	msg, err := c.ex.exchange(ctx, deadline, r.addr, qname, dns.TypeA)
	result := "ok"
	var raw rawAnswer
	if err == nil {
		raw, err = parseA(msg)
		if err == nil && !raw.nx {
			err = l.classify(raw.addrs)
		}
	}
	if err != nil {
		result = reason(err)
	}
	c.metrics.Observe("portcullis_rbl_resolver_seconds", c.now().Sub(start).Seconds(), "resolver", r.addr, "result", result)
	if err != nil {
		c.failure(r, err)
		return entry{}, 0, false, err
	}
	c.success(r)
	if raw.nx {
		return entry{}, raw.ttl, raw.hasTTL, nil
	}
	e := entry{listed: true, addrs: raw.addrs}
	if !l.NoTXT {
		// The reason is evidence for people, not the verdict: a TXT
		// failure leaves the listing as it is.
		if m, err := c.ex.exchange(ctx, deadline, r.addr, qname, dns.TypeTXT); err == nil {
			e.reason = parseTXT(m)
		}
	}
	return e, raw.ttl, raw.hasTTL, nil
}

// failure counts a failed query; MaxFailures in a row take the resolver
// out of rotation for DownFor. A refused or undefined code is the list's
// doing, not the resolver's, and does not count towards that.
func (c *Checker) failure(r *resolver, err error) {
	r.errors.Add(1)
	c.metrics.Add("portcullis_rbl_resolver_errors_total", 1, "resolver", r.addr, "reason", reason(err))
	if errors.Is(err, ErrQueryRefused) || errors.Is(err, ErrUndefinedCode) || errors.Is(err, context.Canceled) {
		return
	}
	r.mu.Lock()
	r.consecutive++
	down := r.consecutive >= c.cfg.MaxFailures && !c.now().Before(r.downUntil)
	if down {
		r.downUntil = c.now().Add(c.cfg.DownFor)
		r.downErr = fmt.Errorf("%w: %d failures in a row, last: %w", ErrNoResolver, r.consecutive, err)
	}
	r.mu.Unlock()
	if down {
		c.metrics.Set("portcullis_rbl_resolver_up", 0, "resolver", r.addr)
		c.log.Warn("rbl resolver out of rotation", "resolver", r.addr, "for", c.cfg.DownFor, "err", err)
	}
}

func (c *Checker) success(r *resolver) {
	r.mu.Lock()
	wasDown := !r.downUntil.IsZero()
	r.consecutive, r.downUntil, r.downErr = 0, time.Time{}, nil
	r.mu.Unlock()
	if wasDown {
		c.metrics.Set("portcullis_rbl_resolver_up", 1, "resolver", r.addr)
		c.log.Info("rbl resolver back in rotation", "resolver", r.addr)
	}
}
