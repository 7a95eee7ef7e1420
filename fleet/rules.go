package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules"
)

// RulesConfig configures a Rules filter.
type RulesConfig struct {
	JetStream jetstream.JetStream
	Bucket    Bucket
	// Dir is where each version's files are written to be compiled
	// (required; a gateway passes data_dir/fleet-rules).
	Dir string
	// Engine configures the rules engine underneath; its Files and
	// Default are ignored (the set comes from the fleet).
	Engine rules.Config
}

// Refusal is a version a node refused, and why.
type Refusal struct {
	Version uint64
	Digest  string
	Reason  string
}

// Rules is a filter.Filter serving the fleet's rule set: a rules.Engine
// fed from the KV bucket by Run. See the package comment for readiness.
type Rules struct {
	*rules.Engine
	cfg     RulesConfig
	log     *slog.Logger
	metrics filter.Metrics

	served  atomic.Pointer[RuleSet] // the set installed (Files dropped)
	seen    atomic.Uint64           // newest revision seen
	handled atomic.Uint64           // newest revision installed or refused
	mu      sync.Mutex
	refused *Refusal
	changed chan struct{} // signalled (non-blocking) on every install or refusal
}

var (
	_ filter.Filter  = (*Rules)(nil)
	_ filter.Readier = (*Rules)(nil)
)

// NewRules returns a Rules with no set: not ready until Run installs one.
func NewRules(cfg RulesConfig) *Rules {
	ec := cfg.Engine
	ec.Files, ec.Default = nil, false
	log := ec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rules{Engine: rules.New(ec), cfg: cfg, log: log, metrics: filter.OrNop(ec.Metrics), changed: make(chan struct{}, 1)}
}

// Ready implements filter.Readier.
func (r *Rules) Ready() error {
	s := r.served.Load()
	if s == nil {
		if ref := r.Refused(); ref != nil {
			return fmt.Errorf("%w: no rule set loaded; version %d refused: %s", ErrNotReady, ref.Version, ref.Reason)
		}
		return fmt.Errorf("%w: no rule set loaded yet", ErrNotReady)
	}
	if seen, h := r.seen.Load(), r.handled.Load(); h < seen {
		return fmt.Errorf("%w: serving version %d, loading version %d", ErrNotReady, s.Version, seen)
	}
	return nil
}

// Served returns the set in use (without its files), or nil.
func (r *Rules) Served() *RuleSet { return r.served.Load() }

// Refused returns the newest refused version newer than the one served, or nil.
func (r *Rules) Refused() *Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		return nil
	}
	if s := r.served.Load(); s != nil && s.Version > r.refused.Version {
		return nil
	}
	c := *r.refused
	return &c
}

// Changed is signalled after each install or refusal (capacity 1).
func (r *Rules) Changed() <-chan struct{} { return r.changed }

// Check implements filter.Filter: the engine's symbols plus a zero-score
// RULESET_V<version> symbol, so the verdict header names the version.
func (r *Rules) Check(ctx context.Context, m *filter.Message) (filter.Result, error) {
	res, err := r.Engine.Check(ctx, m)
	if err != nil {
		return res, err
	}
	if s := r.served.Load(); s != nil {
		res.Symbols = append(res.Symbols, filter.Symbol{Name: "RULESET_V" + strconv.FormatUint(s.Version, 10), Detail: s.Digest})
	}
	return res, nil
}

// Run watches the bucket and installs each new version until ctx ends.
// Connection losses are survived by the watch (nats.go resubscribes); Run
// returns only the error of creating the watch, or ctx's.
func (r *Rules) Run(ctx context.Context) error {
	kv, err := rulesKV(ctx, r.cfg.JetStream, r.cfg.Bucket)
	if err != nil {
		return err
	}
	for {
		w, err := kv.Watch(ctx, rulesKey)
		if err != nil {
			return fmt.Errorf("fleet: watch: %w", err)
		}
		for e := range w.Updates() {
			if e == nil {
				continue // initial values delivered
			}
			r.apply(ctx, e)
		}
		_ = w.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The watch ended without ctx (consumer lost): watch again; the
		// current value comes first, so nothing is missed.
		r.log.Warn("fleet: rules watch ended, resuming")
	}
}

func (r *Rules) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	rev := e.Revision()
	if s := r.served.Load(); s != nil && rev <= s.Version {
		return
	}
	if e.Operation() != jetstream.KeyValuePut {
		return // a delete or purge leaves the current set serving
	}
	if rev > r.seen.Load() {
		r.seen.Store(rev)
	}
	defer r.signal()
	rs, err := decodeSet(e.Value(), rev)
	if err != nil {
		r.refuse(&RuleSet{Version: rev}, err)
		return
	}
	dir := filepath.Join(r.cfg.Dir, strconv.FormatUint(rev, 10))
	_ = os.RemoveAll(dir)
	files, err := rs.write(dir)
	if err == nil {
		var set *rules.Set
		ec := r.cfg.Engine
		ec.Files, ec.Default = files, false
		if set, err = rules.Build(ec); err == nil {
			err = r.Engine.Install(ctx, set)
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		r.refuse(rs, err)
		return
	}
	old := r.served.Load()
	rs.Files = nil
	r.served.Store(rs)
	r.handled.Store(rev)
	r.metrics.Set("portcullis_fleet_rules_version", float64(rev))
	r.metrics.Add("portcullis_fleet_rules_installed_total", 1)
	r.log.Info("fleet: rule set installed", "version", rev, "digest", rs.Digest, "publisher", rs.Publisher)
	if old != nil {
		_ = os.RemoveAll(filepath.Join(r.cfg.Dir, strconv.FormatUint(old.Version, 10)))
	}
}

func (r *Rules) refuse(rs *RuleSet, err error) {
	r.mu.Lock()
	r.refused = &Refusal{Version: rs.Version, Digest: rs.Digest, Reason: err.Error()}
	r.mu.Unlock()
	r.handled.Store(rs.Version)
	r.metrics.Add("portcullis_fleet_rules_refused_total", 1)
	r.metrics.Set("portcullis_fleet_rules_refused_version", float64(rs.Version))
	var serving uint64
	if s := r.served.Load(); s != nil {
		serving = s.Version
	}
	r.log.Error("fleet: rule set refused, keeping the current one", "version", rs.Version, "serving", serving, "err", err)
}

func (r *Rules) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}
