package scanner

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Mode is how the answers of several engines combine.
type Mode int

const (
	// AnyHit: one engine's detection is enough.
	AnyHit Mode = iota
	// Quorum: Options.Quorum engines must agree; fewer detections are
	// unconfirmed and demand quarantine, not reject.
	Quorum
)

func (m Mode) String() string {
	if m == Quorum {
		return "quorum"
	}
	return "any-hit"
}

// Options configure a Multi.
type Options struct {
	// Engines are asked concurrently for every scan (the primary tier).
	Engines []Engine
	// Backups are spares (the backup tier): when an engine is unavailable
	// (error, timeout, open breaker), the next unused spare scans in its
	// place.
	Backups []Engine
	// Mode combines the answers; AnyHit by default.
	Mode Mode
	// Quorum is k in k-of-n for Mode Quorum. Default: a majority of Engines.
	Quorum int
	// MinAnswers is how many engines must judge the bytes for a clean
	// verdict; fewer means ErrAllDown. Default 1, and Quorum in Quorum mode.
	MinAnswers int
	// Timeout bounds one engine's scan. Default 20 s, below a pipeline's
	// default 30 s filter deadline so that a spare still has time. While
	// spares remain, an attempt also gets at most half the time left
	// before the caller's deadline.
	Timeout time.Duration

	Breaker BreakerConfig
	Guard   GuardConfig
	Cache   CacheConfig

	// SharedCache is a result cache shared with other nodes (package
	// fleet's AVCache), asked after a miss of the local cache and filled
	// after every scan; nil means none. A failure of it is a miss: the
	// engines scan (see SharedCache).
	SharedCache SharedCache
	// SharedTimeout bounds one shared-cache call; default
	// DefaultSharedTimeout. SharedRetry is how long the shared cache is
	// not asked after a failure; default DefaultSharedRetry.
	SharedTimeout, SharedRetry time.Duration
	// FleetRates shares the faulty-update guard's counts with other nodes
	// (package fleet's AVGuard): an engine whose detection rate at its
	// signature version is too high across the fleet is suspect on every
	// node (Guard's MinScans and Multiple apply to the fleet's counts);
	// nil means the local guard alone.
	FleetRates FleetRates

	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards

	// now is the clock; tests replace it.
	now func() time.Time
}

// Multi scans with several engines and combines their answers by policy:
// failover to spares, a circuit breaker and a faulty-update guard per
// engine, and a result cache. It is safe for concurrent use.
type Multi struct {
	opts    Options
	engines []*member
	backups []*member
	cache   *cache
	shared  *shared
	fleet   FleetRates
	log     *slog.Logger
	metrics filter.Metrics
	now     func() time.Time
}

// member is one engine with its breaker, guard and known version.
type member struct {
	e     Engine
	br    *breaker
	g     *guard
	mu    sync.Mutex
	ver   string
	verAt time.Time
	// fleetSuspect: the fleet's counts made the engine suspect at its
	// last judged answer (for the gauge and the log line on a change).
	fleetSuspect bool
	verWarned    bool // the version's failure was logged at Warn
}

// NewMulti checks the options and fills in defaults.
func NewMulti(opts Options) (*Multi, error) {
	if len(opts.Engines) == 0 {
		return nil, errors.New("scanner: no engines")
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.Mode == Quorum {
		if opts.Quorum <= 0 {
			opts.Quorum = len(opts.Engines)/2 + 1
		}
		if opts.Quorum > len(opts.Engines) {
			return nil, fmt.Errorf("scanner: quorum %d of %d engines", opts.Quorum, len(opts.Engines))
		}
		opts.MinAnswers = max(opts.MinAnswers, opts.Quorum)
	}
	opts.MinAnswers = max(opts.MinAnswers, 1)
	if opts.MinAnswers > len(opts.Engines) {
		return nil, fmt.Errorf("scanner: %d answers needed from %d engines", opts.MinAnswers, len(opts.Engines))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	opts.Breaker = opts.Breaker.withDefaults()
	opts.Guard = opts.Guard.withDefaults()
	opts.Cache = opts.Cache.withDefaults()
	m := &Multi{opts: opts, log: opts.Logger, metrics: filter.OrNop(opts.Metrics), now: opts.now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.cache = newCache(opts.Cache, opts.now)
	m.shared = newShared(m, opts.SharedCache, opts.SharedTimeout, opts.SharedRetry)
	m.fleet = opts.FleetRates
	seen := map[string]string{} // EngineSymbol → engine name
	mk := func(es []Engine) ([]*member, error) {
		var out []*member
		for _, e := range es {
			if e == nil {
				return nil, errors.New("scanner: nil engine")
			}
			if other, dup := seen[EngineSymbol(e.Name())]; dup {
				return nil, fmt.Errorf("scanner: engines %q and %q share the symbol %s", other, e.Name(), EngineSymbol(e.Name()))
			}
			seen[EngineSymbol(e.Name())] = e.Name()
			out = append(out, &member{e: e, br: &breaker{cfg: opts.Breaker, now: opts.now}, g: newGuard(opts.Guard)})
		}
		return out, nil
	}
	var err error
	if m.engines, err = mk(opts.Engines); err != nil {
		return nil, err
	}
	if m.backups, err = mk(opts.Backups); err != nil {
		return nil, err
	}
	for _, mem := range m.all() {
		m.metrics.Set("portcullis_scanner_breaker_state", float64(Closed), "engine", mem.e.Name())
		m.metrics.Set("portcullis_scanner_suspect", 0, "engine", mem.e.Name())
	}
	return m, nil
}

// Detection is one signature reported by one engine.
type Detection struct {
	Engine    string
	Signature string
	// Suspect: the engine's detection rate had jumped (faulty-update guard)
	// when it reported this.
	Suspect bool
	// Fleet: the fleet's detection rate at the engine's signature
	// version made it suspect (FleetRates); Rate is then the fleet's.
	Fleet bool
	Rate  float64 // the engine's windowed detection rate then
	Base  float64 // its baseline
}

// Verdict is the combined judgement of one scan.
type Verdict struct {
	Detections []Detection
	// Infected: the detections are confirmed by the policy; the message
	// demands the infected action (reject by default).
	Infected bool
	// Unconfirmed: there are detections, but only from suspect engines or
	// below the quorum; they demand quarantine, not reject.
	Unconfirmed bool
	// Failures are engines that answered but could not judge these bytes
	// (ErrContent, ErrSizeLimit): escalated, never clean.
	Failures []*EngineError
	// Down are engines (and spares) that were unavailable while others
	// answered.
	Down []*EngineError
	// Answers is how many engines judged the bytes; Cached how many of
	// those answers came from a cache, Shared how many of those from the
	// shared cache (another node's scan).
	Answers, Cached, Shared int
	// Quorum is the k in force (1 in any-hit mode).
	Quorum int
}

// Partial reports whether an engine scanned only part of the bytes.
func (v Verdict) Partial() bool {
	for _, f := range v.Failures {
		if errors.Is(f, ErrSizeLimit) {
			return true
		}
	}
	return false
}

// Clean reports whether the scan found nothing and nothing failed.
func (v Verdict) Clean() bool { return len(v.Detections) == 0 && len(v.Failures) == 0 }

// answer is one slot's outcome: the engine that finally answered (or the
// errors of all it tried).
type answer struct {
	engine  string
	res     Result
	err     error // nil, a content error, or the unavailability errors
	down    []*EngineError
	cached  bool
	shared  bool  // the cached answer came from the shared cache
	fleet   bool  // suspect by the fleet's rate
	partial error // the engine answered about more bytes than it scans whole
	suspect bool
	rate    float64
	base    float64
}

// copyBufs holds the buffers the cache key is hashed through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// left reports whether a spare remains.
func (s *spares) left() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list) > 0
}

// spares hands out backup engines, each to one slot at most per scan.
type spares struct {
	mu   sync.Mutex
	list []*member
}

func (s *spares) next() *member {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return nil
	}
	m := s.list[0]
	s.list = s.list[1:]
	return m
}

// Scan scans size bytes of r with every engine and combines the answers.
// It returns an error wrapping ErrAllDown when too few engines answered
// (the caller must tempfail, never pass), and ctx's error when ctx ended.
func (m *Multi) Scan(ctx context.Context, r io.ReaderAt, size int64) (Verdict, error) {
	var sum [32]byte
	if m.cache != nil || m.shared != nil {
		h := sha256.New()
		buf := copyBufs.Get().(*[]byte)
		_, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, size), *buf)
		copyBufs.Put(buf)
		if err != nil {
			return Verdict{}, fmt.Errorf("scanner: reading input: %w", err)
		}
		h.Sum(sum[:0])
	}
	sp := &spares{list: append([]*member(nil), m.backups...)}
	answers := make([]answer, len(m.engines))
	var wg sync.WaitGroup
	for i, mem := range m.engines {
		wg.Go(func() { answers[i] = m.slot(ctx, mem, sp, r, size, sum) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Verdict{}, err
	}

	v := Verdict{Quorum: 1}
	if m.opts.Mode == Quorum {
		v.Quorum = m.opts.Quorum
	}
	var clean, detecting, trusted int
	var downErrs []error
	for _, a := range answers {
		v.Down = append(v.Down, a.down...)
		switch {
		case a.err == nil:
			v.Answers++
			if a.cached {
				v.Cached++
			}
			if a.shared {
				v.Shared++
			}
			if a.partial != nil {
				v.Failures = append(v.Failures, &EngineError{Engine: a.engine, Err: a.partial})
			}
			if !a.res.Infected() {
				if a.partial != nil {
					continue // not read whole: not a clean answer
				}
				clean++
				continue
			}
			detecting++
			if !a.suspect {
				trusted++
			}
			for _, s := range a.res.Signatures {
				v.Detections = append(v.Detections, Detection{Engine: a.engine, Signature: s, Suspect: a.suspect, Fleet: a.fleet, Rate: a.rate, Base: a.base})
			}
		case isContent(a.err):
			v.Answers++
			v.Failures = append(v.Failures, &EngineError{Engine: a.engine, Err: a.err})
		default:
			downErrs = append(downErrs, a.err)
		}
	}
	sort.Slice(v.Down, func(i, j int) bool { return v.Down[i].Engine < v.Down[j].Engine })
	// A faulty update is one vendor's: engines that agree vouch for each
	// other, so an outbreak flagged by several engines is not doubted.
	if detecting >= 2 {
		trusted = detecting
	}
	v.Infected = trusted >= v.Quorum
	v.Unconfirmed = len(v.Detections) > 0 && !v.Infected
	if v.Answers == 0 || (len(v.Detections) == 0 && len(v.Failures) == 0 && clean < m.opts.MinAnswers) {
		m.metrics.Add("portcullis_scanner_all_down_total", 1)
		m.log.Warn("scanner: too few engines answered", "answers", v.Answers, "needed", m.opts.MinAnswers, "errors", errors.Join(downErrs...))
		return v, fmt.Errorf("%w (%d of %d answers needed): %w", ErrAllDown, clean, m.opts.MinAnswers, errors.Join(downErrs...))
	}
	return v, nil
}

// slot asks one engine, failing over to spares while it is unavailable.
func (m *Multi) slot(ctx context.Context, mem *member, sp *spares, r io.ReaderAt, size int64, sum [32]byte) answer {
	var down []*EngineError
	for {
		a := m.attempt(ctx, mem, r, size, sum, sp.left())
		if a.err == nil || isContent(a.err) {
			a.down = down
			return a
		}
		ee := &EngineError{Engine: mem.e.Name(), Err: a.err}
		down = append(down, ee)
		if ctx.Err() != nil {
			return answer{engine: mem.e.Name(), err: ctx.Err()}
		}
		next := sp.next()
		if next == nil {
			errs := make([]error, len(down))
			for i, d := range down {
				errs[i] = d
			}
			return answer{engine: mem.e.Name(), err: errors.Join(errs...), down: down}
		}
		m.log.Warn("scanner: failing over", "engine", mem.e.Name(), "spare", next.e.Name(), "err", a.err)
		m.metrics.Add("portcullis_scanner_failovers_total", 1, "engine", mem.e.Name(), "spare", next.e.Name())
		mem = next
	}
}

// attempt asks one engine once: cache, breaker, scan, bookkeeping.
func (m *Multi) attempt(ctx context.Context, mem *member, r io.ReaderAt, size int64, sum [32]byte, spare bool) answer {
	name := mem.e.Name()
	a := answer{engine: name}
	key, keyed := cacheKey{}, false
	var ver string
	if m.cache != nil || m.shared != nil || m.fleet != nil {
		ver, _ = m.version(ctx, mem)
	}
	if ver != "" && (m.cache != nil || m.shared != nil) {
		key, keyed = cacheKey{sum: sum, engine: name, version: ver}, true
		res, hit := m.cache.get(key)
		if m.cache != nil {
			if hit {
				m.metrics.Add("portcullis_scanner_cache_hits_total", 1, "engine", name)
			} else {
				m.metrics.Add("portcullis_scanner_cache_misses_total", 1, "engine", name)
			}
		}
		if !hit {
			if res, hit = m.shared.get(ctx, CacheKey{Sum: sum, Engine: name, Version: ver}); hit {
				a.shared = true
				m.cache.put(key, res)
			}
		}
		if hit {
			a.res, a.cached = res, true
			a.rate, a.base, a.suspect = mem.g.state()
			m.judge(mem, ver, &a)
			a.partial = m.beyond(mem, size)
			return a
		}
	}
	if !mem.br.allow() {
		a.err = ErrBreakerOpen
		return a
	}
	timeout := m.opts.Timeout
	if d, ok := ctx.Deadline(); ok && spare {
		timeout = min(timeout, time.Until(d)/2)
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	start := m.now()
	res, err := mem.e.Scan(sctx, io.NewSectionReader(r, 0, size))
	cancel()
	elapsed := m.now().Sub(start)
	if err != nil && ctx.Err() != nil {
		// The caller gave up; that says nothing about the engine.
		mem.br.release()
		a.err = ctx.Err()
		return a
	}
	if err != nil && sctx.Err() == context.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w after %v: %w", context.DeadlineExceeded, timeout, err)
	}
	if err == nil {
		a.partial = m.beyond(mem, size)
	}
	result := "clean"
	switch {
	case err == nil && res.Infected():
		result = "infected"
	case errors.Is(err, ErrSizeLimit), a.partial != nil:
		result = "partial"
	case err != nil && isContent(err):
		result = "content-error"
	case err != nil:
		result = "error"
	}
	m.metrics.Add("portcullis_scanner_scans_total", 1, "engine", name, "result", result)
	m.metrics.Observe("portcullis_scanner_scan_seconds", elapsed.Seconds(), "engine", name)
	if err != nil {
		m.metrics.Add("portcullis_scanner_errors_total", 1, "engine", name, "kind", result)
	}
	state, changed := mem.br.record(err == nil || isContent(err))
	if changed {
		m.metrics.Set("portcullis_scanner_breaker_state", float64(state), "engine", name)
		m.log.Warn("scanner: circuit breaker", "engine", name, "state", state.String(), "err", err)
	}
	if err != nil {
		a.err = err
		return a
	}
	a.res = res
	var flipped bool
	a.rate, a.base, a.suspect, flipped = mem.g.record(res.Infected())
	if m.fleet != nil && ver != "" {
		m.fleet.Record(name, ver, res.Infected())
	}
	if flipped {
		// The anomaly itself, once per change: dashboards and alerts key on
		// this gauge; the per-detection counter below says how much.
		m.metrics.Set("portcullis_scanner_suspect", b2f(a.suspect), "engine", name)
		m.log.Warn("scanner: engine detection rate", "engine", name, "suspect", a.suspect, "rate", a.rate, "baseline", a.base)
	}
	m.judge(mem, ver, &a)
	if res.Infected() {
		m.metrics.Add("portcullis_scanner_detections_total", 1, "engine", name)
		if a.suspect {
			m.metrics.Add("portcullis_scanner_suspect_total", 1, "engine", name)
			m.log.Warn("scanner: detection rate jumped; detection is suspect", "engine", name, "fleet", a.fleet,
				"rate", a.rate, "baseline", a.base, "signatures", res.Signatures)
		}
	}
	if keyed {
		m.cache.put(key, res)
		m.shared.put(ctx, CacheKey{Sum: sum, Engine: name, Version: ver}, res)
	}
	return a
}

// beyond is the partial-scan error when size exceeds the engine's known
// limit, nil otherwise.
func (m *Multi) beyond(mem *member, size int64) error {
	if lim := scanLimit(mem.e); lim > 0 && size > lim {
		return beyondLimit(mem.e.Name(), size, lim)
	}
	return nil
}

// version returns the engine's signature version for the cache key, asking
// the engine at most once per VersionTTL. ok is false when the engine has
// no version (or could not tell): such answers are not cached.
func (m *Multi) version(ctx context.Context, mem *member) (string, bool) {
	v, isV := mem.e.(Versioner)
	if !isV {
		return "", false
	}
	mem.mu.Lock()
	defer mem.mu.Unlock()
	if !mem.verAt.IsZero() && m.now().Sub(mem.verAt) < m.opts.Cache.VersionTTL {
		return mem.ver, mem.ver != ""
	}
	if mem.br.State() == Open {
		return "", false
	}
	vctx, cancel := context.WithTimeout(ctx, min(m.opts.Timeout, 10*time.Second))
	defer cancel()
	ver, err := v.Version(vctx)
	if err != nil {
		// Not asked again for a while: a stalled engine must not cost a
		// version timeout on top of every scan timeout.
		if (m.shared != nil || m.fleet != nil) && !mem.verWarned {
			// Once: sharing with the fleet silently doing nothing would
			// look like a working cache.
			mem.verWarned = true
			m.log.Warn("scanner: engine version unknown; its results are not shared and the fleet guard cannot judge it",
				"engine", mem.e.Name(), "err", err)
		} else {
			m.log.Debug("scanner: engine version unknown", "engine", mem.e.Name(), "err", err)
		}
		mem.ver, mem.verAt = "", m.now().Add(min(versionRetry, m.opts.Cache.VersionTTL)-m.opts.Cache.VersionTTL)
		return "", false
	}
	if ver != mem.ver && mem.ver != "" {
		m.log.Info("scanner: signature version changed", "engine", mem.e.Name(), "from", mem.ver, "to", ver)
	}
	mem.ver, mem.verAt = ver, m.now()
	return ver, ver != ""
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// versionRetry is how soon a failed Version is asked again.
const versionRetry = 10 * time.Second

// PurgeCache drops every cached result and returns how many there were.
// Call it after changing signatures in a way the engine's version does
// not show (unofficial clamd databases reloaded under the same official
// version), before re-scanning what they flagged.
func (m *Multi) PurgeCache() int {
	n := m.cache.purge()
	m.log.Info("scanner: result cache purged", "entries", n)
	return n
}

// Ready reports ErrAllDown when the breakers of too many engines are open.
func (m *Multi) Ready() error {
	up := 0
	for _, mem := range m.all() {
		if mem.br.State() != Open {
			up++
		}
	}
	if up < m.opts.MinAnswers {
		return fmt.Errorf("%w: %w: %d engines with closed or half-open breakers, %d needed", filter.ErrNotReady, ErrAllDown, up, m.opts.MinAnswers)
	}
	return nil
}

// Close closes the engines that hold resources (io.Closer: pooled
// connections of clamd and ICAP clients).
func (m *Multi) Close() error {
	var errs []error
	for _, mem := range m.all() {
		if c, ok := mem.e.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// all returns primaries then spares.
func (m *Multi) all() []*member {
	return append(append([]*member(nil), m.engines...), m.backups...)
}

// EngineState is a snapshot of one engine's health.
type EngineState struct {
	Engine   string
	Breaker  BreakerState
	Rate     float64 // windowed detection rate
	Baseline float64
	Suspect  bool
	// FleetSuspect: the fleet's counts at Version doubted the engine at
	// its last judged answer (Options.FleetRates).
	FleetSuspect bool
	Version      string
}

// States returns a snapshot of every engine, primaries then spares.
func (m *Multi) States() []EngineState {
	var out []EngineState
	for _, mem := range m.all() {
		rate, base, suspect := mem.g.state()
		mem.mu.Lock()
		ver, fleet := mem.ver, mem.fleetSuspect
		mem.mu.Unlock()
		out = append(out, EngineState{Engine: mem.e.Name(), Breaker: mem.br.State(), Rate: rate, Baseline: base, Suspect: suspect,
			FleetSuspect: fleet, Version: ver})
	}
	return out
}
