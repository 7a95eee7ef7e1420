package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/rbl"
	"github.com/portcullis-mail/portcullis/rules"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
	"github.com/portcullis-mail/portcullis/scanner/command"
	"github.com/portcullis-mail/portcullis/scanner/icap"
)

// Options are what a builder needs beyond the file.
type Options struct {
	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Filters is the pipeline a configuration names, with handles on the
// filters that an operator acts on while it runs.
type Filters struct {
	Pipeline  *filter.Pipeline
	Inspector *archive.Inspector // nil when archive is off
	Rules     *rules.Engine      // nil when no rules are configured; Reload on SIGHUP
	Lists     *rbl.Checker       // nil when no DNS list is configured
	Scanner   *scanner.Multi     // nil when no AV engine is configured
	// FleetRules serves the fleet's rule set (rules.source nats; Rules is
	// then nil): watched, gated and swapped as versions are published.
	FleetRules *fleet.Rules
	// FleetZones serves the zones of dns.zones (source nats) from
	// memory; the DNS lists (Lists) ask them first.
	FleetZones *fleet.Zones

	closers   []func() error // what the filters hold, Lists excepted
	rulesLoad *rulesLoad     // the first background load of Rules (Build)
	options   filter.Options // the pipeline's, for WithLists
	oneShot   bool

	closeLists sync.Once
}

// Names lists the pipeline's filters by name, in order.
func (f *Filters) Names() []string {
	var out []string
	for _, x := range f.Pipeline.Filters() {
		out = append(out, x.Name())
	}
	return out
}

// WaitRules waits for the rules' first load to end and returns its
// error: at once with nil for BuildFilters' (done before it returned) or
// when no rules are configured. Build loads them in the background; a
// server need not wait (its rules filter is not ready meanwhile), a test
// or a tool that wants them in does.
func (f *Filters) WaitRules(ctx context.Context) error {
	if f.rulesLoad == nil {
		return nil
	}
	select {
	case <-f.rulesLoad.done:
		return f.rulesLoad.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rulesLoad is a background load: err is set before done is closed.
type rulesLoad struct {
	done chan struct{}
	err  error
}

// Close releases what the filters hold (engine connections, resolvers).
func (f *Filters) Close() error {
	var errs []error
	for i := len(f.closers) - 1; i >= 0; i-- {
		errs = append(errs, f.closers[i]())
	}
	f.closers = nil
	errs = append(errs, f.CloseLists())
	return errors.Join(errs...)
}

// CloseLists closes the DNS lists' checker alone (idempotent): after
// WithLists replaced them, once no transaction uses f's pipeline any
// more. The other filters stay open; the Filters that replaced f closes
// them.
func (f *Filters) CloseLists() error {
	if f.Lists == nil {
		return nil
	}
	var err error
	f.closeLists.Do(func() { err = f.Lists.Close() })
	return err
}

// WithLists returns Filters that share f's archive inspector, rules
// (local or the fleet's) and AV scanner and ask the DNS lists cfg.dns names (none when it names
// none), in a new pipeline with f's policy, limits and spool: the
// reload of a server whose dns section changed. f is unchanged and keeps
// working; the caller swaps the pipelines for new transactions, closes
// f's lists with f.CloseLists when f's last transaction is done, and
// from then on closes the new Filters (not f) at shutdown. It fails,
// opening nothing, when cfg's dns section is invalid.
func (f *Filters) WithLists(ctx context.Context, cfg *Config, opts Options) (*Filters, error) {
	if err := cfg.checkFilters(); err != nil {
		return nil, err
	}
	n := &Filters{Inspector: f.Inspector, Rules: f.Rules, FleetRules: f.FleetRules, FleetZones: f.FleetZones, Scanner: f.Scanner,
		closers: f.closers, options: f.options, oneShot: f.oneShot, rulesLoad: f.rulesLoad}
	if cfg.DNS.Zones.Source == "nats" && n.FleetZones == nil {
		zs, closer, err := buildFleetZones(cfg, opts.logger(), opts.Metrics)
		if err != nil {
			return nil, err
		}
		n.FleetZones = zs
		n.closers = append(slices.Clip(n.closers), closer)
	}
	var list []filter.Filter
	for _, x := range f.Pipeline.Filters() {
		switch x.Name() {
		case rbl.ConnectFilterName, rbl.MailFromFilterName, rbl.DataFilterName:
		default:
			list = append(list, x)
		}
	}
	lists, err := buildLists(ctx, cfg.DNS, opts, f.oneShot, n.FleetZones)
	if err != nil {
		return nil, err
	}
	if lists != nil {
		n.Lists = lists
		list = append(list, lists.Filters()...)
	}
	n.Pipeline = filter.NewPipeline(f.options, list...)
	return n, nil
}

// BuildFilters makes every filter the configuration names and the
// pipeline over them, for one-shot use: rules are loaded (and gated on
// their regression corpus) before it returns; DNS resolvers get one
// health round. Build (a server) loads the rules in the background
// instead: the rules filter is not ready until they are in.
func BuildFilters(ctx context.Context, cfg *Config, opts Options) (*Filters, error) {
	return buildFilters(ctx, cfg, opts, filter.SpoolConfig{}, true)
}

// buildFilters builds for one-shot use (the scan CLI: one health round of
// the DNS resolvers now, none in the background) or for a server (the
// health check runs in the background; the lists are not ready, and mail
// is tempfailed, until its first round is done).
func buildFilters(ctx context.Context, cfg *Config, opts Options, spool filter.SpoolConfig, oneShot bool) (*Filters, error) {
	if err := cfg.checkFilters(); err != nil {
		return nil, err
	}
	log := opts.logger()
	f := &Filters{}
	var list []filter.Filter
	fail := func(err error) (*Filters, error) {
		f.Close()
		return nil, err
	}

	if a := cfg.Archive; a.Enabled {
		f.Inspector = archive.New(archive.Config{
			Logger:            log,
			Metrics:           opts.Metrics,
			AllowNested:       a.AllowNested,
			BannedExtensions:  a.BannedExtensions,
			BannedTypes:       a.BannedTypes,
			AllowedExtensions: a.AllowedExtensions,
			AllowedTypes:      a.AllowedTypes,
			Limits:            archive.Limits{MaxDepth: a.MaxDepth, MaxTotalBytes: a.MaxTotalBytes, MaxEntries: a.MaxEntries},
		})
		list = append(list, f.Inspector)
	}

	if av := cfg.AV; len(engineNames(av)) > 0 {
		av, err := buildScanner(cfg, f, log, opts.Metrics)
		if err != nil {
			return fail(err)
		}
		list = append(list, av)
	}

	if cfg.Rules.Source == "nats" {
		fr, closer, err := buildFleetRules(cfg, log, opts.Metrics)
		if err != nil {
			return fail(err)
		}
		f.FleetRules = fr
		f.closers = append(f.closers, closer)
		list = append(list, fr)
	} else if r := cfg.Rules; r.Default || len(r.Files) > 0 || r.SpamAssassin != "" {
		f.Rules = rules.New(rules.Config{Default: r.Default, Files: r.Files, SpamAssassin: r.SpamAssassin,
			DetectType: archive.DetectType, Logger: log, Metrics: opts.Metrics})
		if oneShot {
			if err := f.Rules.Reload(ctx); err != nil {
				return fail(fmt.Errorf("config: rules: %w", err))
			}
		} else {
			// A server listens while its rules load: the engine is not
			// ready (mail tempfailed, /readyz 503) until they are, and a
			// failed load keeps it so until a reload succeeds.
			lctx, cancel := context.WithCancel(ctx)
			res := f.Rules.LoadInBackground(lctx)
			f.rulesLoad = &rulesLoad{done: make(chan struct{})}
			go func(l *rulesLoad) {
				l.err = <-res
				close(l.done)
			}(f.rulesLoad)
			f.closers = append(f.closers, func() error { cancel(); return nil })
		}
		list = append(list, f.Rules)
	}

	if cfg.DNS.Zones.Source == "nats" {
		zs, closer, err := buildFleetZones(cfg, log, opts.Metrics)
		if err != nil {
			return fail(err)
		}
		f.FleetZones = zs
		f.closers = append(f.closers, closer)
		if oneShot {
			zctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			waitZones(zctx, zs)
			cancel()
		}
	}
	if c, err := buildLists(ctx, cfg.DNS, opts, oneShot, f.FleetZones); err != nil {
		return fail(err)
	} else if c != nil {
		f.Lists = c
		list = append(list, c.Filters()...)
	}

	f.options = filter.Options{Policy: cfg.Policy.FilterPolicy(), Limits: cfg.Limits.FilterLimits(),
		Spool: spool, Logger: log, Metrics: opts.Metrics}
	f.oneShot = oneShot
	f.Pipeline = filter.NewPipeline(f.options, list...)
	return f, nil
}

// buildLists makes the DNS lists' checker, nil when d names no list; the
// lists d.Zones names are answered from zs first.
func buildLists(ctx context.Context, d DNS, opts Options, oneShot bool, zs *fleet.Zones) (*rbl.Checker, error) {
	if len(d.DNSBL)+len(d.URIBL) == 0 {
		return nil, nil
	}
	var lists []rbl.List
	for _, spec := range d.DNSBL {
		l, err := rbl.ParseList(rbl.IPList, spec)
		if err != nil {
			return nil, fmt.Errorf("config: dnsbl %q: %w", spec, err)
		}
		if zs != nil && slices.Contains(d.Zones.Lists, l.Zone) {
			z, err := zs.Zone(l.Zone)
			if err != nil {
				return nil, fmt.Errorf("config: dns: zones: %w", err)
			}
			l.Local, l.RequireLocal = z, d.Zones.UntilLoaded != "dns"
		}
		lists = append(lists, l)
	}
	for _, spec := range d.URIBL {
		l, err := rbl.ParseList(rbl.DomainList, spec)
		if err != nil {
			return nil, fmt.Errorf("config: uribl %q: %w", spec, err)
		}
		lists = append(lists, l)
	}
	rc := rbl.Config{Resolvers: d.Resolvers, Lists: lists, OnUnknown: d.OnUnknown, Logger: opts.logger(), Metrics: opts.Metrics,
		QueryTimeout: time.Duration(d.QueryTimeout), HealthInterval: time.Duration(d.HealthInterval)}
	for _, cidr := range d.LookupNonPublic {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("config: dns: lookup_non_public %q: %w", cidr, err)
		}
		rc.LookupNonPublic = append(rc.LookupNonPublic, p)
	}
	if oneShot {
		rc.HealthInterval = -1
	}
	c, err := rbl.NewChecker(rc)
	if err != nil {
		return nil, fmt.Errorf("config: dns: %w", err)
	}
	if oneShot {
		// One health round (RFC 5782 test points) before the only
		// message: a resolver that hijacks NXDOMAIN is out from the start.
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c.CheckHealth(hctx)
		cancel()
	}
	return c, nil
}

// buildScanner makes the engines, the multi-engine scanner over them and
// the filter that scans messages with it.
func buildScanner(cfg *Config, f *Filters, log *slog.Logger, m filter.Metrics) (filter.Filter, error) {
	av := cfg.AV
	var engines []scanner.Engine
	for i, addr := range av.Clamd {
		c, err := clamd.New(clamd.Config{Addr: addr, Name: fmt.Sprintf("clamd-%d", i+1), ConfigFile: av.ClamdConfig, MaxSize: av.ClamdMaxSize})
		if err != nil {
			return nil, fmt.Errorf("config: clamd %q: %w", addr, err)
		}
		engines = append(engines, c)
	}
	for i, u := range av.ICAP {
		c, err := icap.New(icap.Config{URL: u, Name: fmt.Sprintf("icap-%d", i+1), MaxSize: av.ICAPMaxSize, TrustPreview: av.ICAPTrustPreview})
		if err != nil {
			return nil, fmt.Errorf("config: icap %q: %w", u, err)
		}
		engines = append(engines, c)
	}
	for i, cmd := range av.Command {
		cc := command.Config{Path: cmd.Path, Args: cmd.Args, Name: commandName(i, cmd), Clean: cmd.Clean, Infected: cmd.Infected, Timeout: time.Duration(cmd.Timeout)}
		if cmd.Pattern != "" {
			cc.Pattern = regexp.MustCompile(cmd.Pattern) // checked by checkFilters
		}
		c, err := command.New(cc)
		if err != nil {
			return nil, fmt.Errorf("config: command %q: %w", cmd.Path, err)
		}
		engines = append(engines, c)
	}
	backup := map[string]bool{}
	for _, b := range av.Backups {
		backup[b] = true
	}
	opts := scanner.Options{
		Quorum:  av.Quorum,
		Timeout: time.Duration(av.Timeout),
		Breaker: scanner.BreakerConfig{Failures: av.Breaker.Failures, Cooldown: time.Duration(av.Breaker.Cooldown)},
		Guard: scanner.GuardConfig{Disabled: av.Guard.Disabled, Window: av.Guard.Window, MinScans: av.Guard.MinScans,
			Multiple: av.Guard.Multiple, Baseline: av.Guard.Baseline},
		Cache:   scanner.CacheConfig{Entries: av.Cache.Entries, TTL: time.Duration(av.Cache.TTL)},
		Logger:  log,
		Metrics: m,
	}
	for i, e := range engines {
		if backup[engineNames(av)[i]] {
			opts.Backups = append(opts.Backups, e)
		} else {
			opts.Engines = append(opts.Engines, e)
		}
	}
	if av.Mode == "quorum" {
		opts.Mode = scanner.Quorum
	}
	if err := buildAVFleet(cfg, &opts, f, log, m); err != nil {
		return nil, err
	}
	multi, err := scanner.NewMulti(opts)
	if err != nil {
		return nil, fmt.Errorf("config: av: %w", err)
	}
	f.Scanner = multi
	f.closers = append(f.closers, multi.Close)
	sc := scanner.Config{Scanner: multi, OnInfected: av.OnInfected, OnDoubt: av.OnDoubt, Logger: log, Metrics: m}
	if f.Inspector != nil {
		sc.Leaves = scanner.ArchiveLeaves(f.Inspector)
	}
	s, err := scanner.New(sc)
	if err != nil {
		return nil, fmt.Errorf("config: av: %w", err)
	}
	return s, nil
}
