package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/diskfs"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
	"github.com/portcullis-mail/portcullis/relay"
	"github.com/portcullis-mail/portcullis/router"
	"golang.org/x/time/rate"
)

// Enqueuer is what a System's queue does for the router and at shutdown:
// *queue.Queue and *jetstream.Queue implement it.
type Enqueuer interface {
	router.Queue
	Shutdown(ctx context.Context) error
}

// System is everything a gateway runs behind its front-end: the filters,
// the queue with its relay, the quarantine and the router.
type System struct {
	Config     *Config
	Filters    *Filters
	Queue      Enqueuer
	Spool      *queue.Queue // the local queue; nil with backend jetstream
	Quarantine *quarantine.Manager
	Relay      *relay.SMTP
	Router     *router.Router

	closers []func(context.Context) error
}

// Build makes the whole System: it locks data_dir (a second process on the
// same directory fails here, saying so), builds the filters, opens the
// queue and the quarantine (under data_dir, or in JetStream), and wires the
// relay and the router. On error everything opened is closed again.
func Build(ctx context.Context, cfg *Config, opts Options) (*System, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &System{Config: cfg}
	fail := func(err error) (*System, error) {
		s.Close(context.Background())
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("config: data_dir: %w", err)
	}
	unlock, err := diskfs.Lock(cfg.DataDir, "portcullis: data_dir")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func(context.Context) error { unlock(); return nil })

	tmp := filepath.Join(cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	// Messages over the spool's 1 MiB stay in memory while 256 MiB of
	// them are in flight: a temporary file costs a write and a read back
	// for every filter (5 ms of a 3 MB message's CPU).
	spool := filter.SpoolConfig{Dir: tmp, Shared: filter.NewSpoolBudget(filter.DefaultSpoolBudgetBytes)}
	s.Filters, err = buildFilters(ctx, cfg, opts, spool, false)
	if err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, func(context.Context) error { return s.Filters.Close() })

	s.Relay, err = buildRelay(cfg, opts)
	if err != nil {
		return fail(err)
	}
	qcfg := queueConfig(cfg, opts, s.Relay)
	var store quarantine.Store
	switch cfg.Queue.Backend {
	case "jetstream":
		jcfg := jetstream.Config{Name: cfg.Queue.Name, Replicas: cfg.Queue.Replicas, MaxMessageBytes: cfg.maxMessageBytes(),
			Logger: opts.Logger, Metrics: opts.Metrics}
		js, err := jetstream.Open(ctx, cfg.Queue.URL, jcfg)
		if err != nil {
			return fail(fmt.Errorf("config: queue: %w", err))
		}
		s.closers = append(s.closers, func(context.Context) error { return js.Close() })
		jq, err := jetstream.NewQueue(ctx, js, jetstream.QueueConfig{Delivery: qcfg, AckWait: time.Duration(cfg.Queue.AckWait)})
		if err != nil {
			return fail(fmt.Errorf("config: queue: %w", err))
		}
		s.Queue = jq
		s.closers = append(s.closers, jq.Shutdown)
		qs, err := jetstream.OpenQuarantine(ctx, cfg.Queue.URL, jcfg)
		if err != nil {
			return fail(fmt.Errorf("config: quarantine: %w", err))
		}
		s.closers = append(s.closers, func(context.Context) error { return qs.Close() })
		store = qs
	default:
		q, err := queue.Open(filepath.Join(cfg.DataDir, "queue"), qcfg)
		if err != nil {
			return fail(fmt.Errorf("config: queue: %w", err))
		}
		s.Queue, s.Spool = q, q
		s.closers = append(s.closers, q.Shutdown)
		d, err := quarantine.OpenDir(filepath.Join(cfg.DataDir, "quarantine"), quarantine.DirConfig{Logger: opts.Logger, Metrics: opts.Metrics})
		if err != nil {
			return fail(fmt.Errorf("config: quarantine: %w", err))
		}
		s.closers = append(s.closers, func(context.Context) error { return d.Close() })
		store = d
	}
	qc := quarantine.Config{Store: store, Queue: s.Queue, Retention: time.Duration(cfg.Quarantine.Retention),
		Limits: cfg.Limits.FilterLimits(), MaxMessageBytes: cfg.maxMessageBytes(), Logger: opts.Logger, Metrics: opts.Metrics}
	if cfg.Quarantine.RescanRate > 0 {
		qc.RescanRate = rate.Limit(cfg.Quarantine.RescanRate)
	}
	s.Quarantine, err = quarantine.New(qc)
	if err != nil {
		return fail(fmt.Errorf("config: quarantine: %w", err))
	}
	s.Router, err = router.New(router.Config{Queue: s.Queue, Quarantine: s.Quarantine,
		HeadersOnAccept: cfg.Router.HeadersOnAccept, KeepDiscarded: cfg.Router.KeepDiscarded,
		Logger: opts.Logger, Metrics: opts.Metrics})
	if err != nil {
		return fail(err)
	}
	return s, nil
}

// maxMessageBytes is the one message size limit: smtp's, else limits'.
func (c *Config) maxMessageBytes() int64 {
	if c.SMTP.MaxMessageBytes > 0 {
		return c.SMTP.MaxMessageBytes
	}
	if c.Limits.MaxMessageBytes > 0 {
		return c.Limits.MaxMessageBytes
	}
	return filter.DefaultMaxMessageBytes
}

// MaxMessageBytes is the message size limit the gateway advertises and
// every store enforces.
func (c *Config) MaxMessageBytes() int64 { return c.maxMessageBytes() }

func buildRelay(cfg *Config, opts Options) (*relay.SMTP, error) {
	routes := map[string]relay.Route{}
	for d, r := range cfg.Relay.Routes {
		routes[d] = relay.Route{Hosts: r.Hosts, Fallback: r.Fallback, LMTP: r.LMTP}
	}
	rc := relay.Config{Routes: routes, LocalName: cfg.Relay.LocalName, MaxConnsPerHost: cfg.Relay.MaxConnsPerHost,
		RatePerHost: cfg.Relay.RatePerHost, Logger: opts.Logger, Metrics: opts.Metrics}
	if cfg.Relay.TLS == "required" {
		rc.TLSMode = relay.TLSRequired
	}
	r, err := relay.New(rc)
	if err != nil {
		return nil, fmt.Errorf("config: relay: %w", err)
	}
	return r, nil
}

func queueConfig(cfg *Config, opts Options, d queue.Deliverer) queue.Config {
	q := cfg.Queue
	c := queue.Config{Deliverer: d, Workers: q.Workers, RetryBase: time.Duration(q.RetryBase), RetryMax: time.Duration(q.RetryMax),
		MaxLifetime: time.Duration(q.MaxLifetime), MaxCrashes: q.MaxCrashes, MaxDepth: q.MaxDepth, MaxAge: time.Duration(q.MaxAge),
		MinFreeBytes: q.MinFreeBytes, MaxMessageBytes: cfg.maxMessageBytes(), Hostname: cfg.SMTP.Domain,
		Logger: opts.Logger, Metrics: opts.Metrics}
	c.Spool.SweepInterval = time.Duration(q.SweepInterval)
	if q.Bounce == "hold" {
		c.BouncePolicy = queue.Hold
	}
	return c
}

// Ready returns nil when every filter is ready; the queue is open for as
// long as the System is.
func (s *System) Ready() error { return s.Filters.Pipeline.Ready() }

// Close shuts the System down: the queue first (waiting for deliveries in
// flight until ctx ends), then the stores, the filters and the data_dir
// lock. It is idempotent.
func (s *System) Close(ctx context.Context) error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](ctx); err != nil && !errors.Is(err, queue.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}
