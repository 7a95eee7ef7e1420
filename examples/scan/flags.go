package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/config"
	"github.com/portcullis-mail/portcullis/rbl"
	"github.com/portcullis-mail/portcullis/rules"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
	"github.com/portcullis-mail/portcullis/scanner/icap"
)

// extraFlags are the flags that configure one package each. Adding a
// package is a field here, a line in register and a line in apply.
type extraFlags struct {
	rules    stringList
	dnsbl    stringList
	uribl    stringList
	resolver stringList
	clamd    stringList
	icap     stringList
}

func (e *extraFlags) register(fs *flag.FlagSet) {
	fs.Var(&e.rules, "rules", "a rule file (.cf files are read as SpamAssassin rules); repeatable")
	fs.Var(&e.dnsbl, "dnsbl", "a DNS blocklist for the client IP: ZONE[=SCORE] or a preset (zen, spamcop, barracuda, dnswl); repeatable")
	fs.Var(&e.uribl, "uribl", "a DNS blocklist for the domains of links: ZONE[=SCORE] or a preset (dbl, surbl, uribl); repeatable")
	fs.Var(&e.resolver, "resolver", "a DNS resolver HOST:PORT; repeatable, in failover order")
	fs.Var(&e.clamd, "clamd", "a clamd address HOST:PORT or unix:/path; repeatable")
	fs.Var(&e.icap, "icap", "an ICAP antivirus service icap://HOST[:PORT]/SERVICE; repeatable")
}

// apply writes the flags into the configuration, over the file.
func (e *extraFlags) apply(cfg *config.Config) error {
	cfg.Rules.Files = append(cfg.Rules.Files, e.rules...)
	cfg.DNS.DNSBL = append(cfg.DNS.DNSBL, e.dnsbl...)
	cfg.DNS.URIBL = append(cfg.DNS.URIBL, e.uribl...)
	cfg.DNS.Resolvers = append(cfg.DNS.Resolvers, e.resolver...)
	cfg.AV.Clamd = append(cfg.AV.Clamd, e.clamd...)
	cfg.AV.ICAP = append(cfg.AV.ICAP, e.icap...)
	if len(cfg.DNS.DNSBL)+len(cfg.DNS.URIBL) > 0 && len(cfg.DNS.Resolvers) == 0 {
		return errors.New("-dnsbl and -uribl need at least one -resolver")
	}
	return nil
}

// build makes the filters the configuration asks for, and a function that
// releases what they hold.
func build(cfg *config.Config, log *slog.Logger) ([]filter.Filter, func(), error) {
	var filters []filter.Filter
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	fail := func(err error) ([]filter.Filter, func(), error) {
		closeAll()
		return nil, nil, err
	}

	var inspector *archive.Inspector
	if a := cfg.Archive; a.Enabled {
		inspector = archive.New(archive.Config{
			Logger:            log,
			AllowNested:       a.AllowNested,
			BannedExtensions:  a.BannedExtensions,
			BannedTypes:       a.BannedTypes,
			AllowedExtensions: a.AllowedExtensions,
			AllowedTypes:      a.AllowedTypes,
			Limits:            archive.Limits{MaxDepth: a.MaxDepth, MaxTotalBytes: a.MaxTotalBytes, MaxEntries: a.MaxEntries},
		})
		filters = append(filters, inspector)
	}

	if av := cfg.AV; len(av.Clamd)+len(av.ICAP) > 0 {
		var engines []scanner.Engine
		for i, addr := range av.Clamd {
			c, err := clamd.New(clamd.Config{Addr: addr, Name: fmt.Sprintf("clamd-%d", i+1)})
			if err != nil {
				return fail(fmt.Errorf("clamd %q: %w", addr, err))
			}
			engines = append(engines, c)
		}
		for i, u := range av.ICAP {
			c, err := icap.New(icap.Config{URL: u, Name: fmt.Sprintf("icap-%d", i+1), MaxSize: av.ICAPMaxSize})
			if err != nil {
				return fail(fmt.Errorf("icap %q: %w", u, err))
			}
			engines = append(engines, c)
		}
		opts := scanner.Options{Engines: engines, Quorum: av.Quorum, Timeout: time.Duration(av.Timeout), Logger: log}
		switch av.Mode {
		case "", "any":
			opts.Mode = scanner.AnyHit
		case "quorum":
			opts.Mode = scanner.Quorum
		default:
			return fail(fmt.Errorf("av mode %q: want any or quorum", av.Mode))
		}
		multi, err := scanner.NewMulti(opts)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { multi.Close() })
		cfgAV := scanner.Config{Scanner: multi, OnInfected: av.OnInfected, Logger: log}
		if inspector != nil {
			cfgAV.Leaves = scanner.ArchiveLeaves(inspector)
		}
		f, err := scanner.New(cfgAV)
		if err != nil {
			return fail(err)
		}
		filters = append(filters, f)
	}

	if r := cfg.Rules; r.Default || len(r.Files) > 0 {
		eng := rules.New(rules.Config{Default: r.Default, Files: r.Files, DetectType: archive.DetectType, Logger: log})
		if err := eng.Reload(context.Background()); err != nil {
			return fail(err)
		}
		filters = append(filters, eng)
	}

	if d := cfg.DNS; len(d.DNSBL)+len(d.URIBL) > 0 {
		var lists []rbl.List
		for _, spec := range d.DNSBL {
			l, err := rbl.ParseList(rbl.IPList, spec)
			if err != nil {
				return fail(fmt.Errorf("dnsbl %q: %w", spec, err))
			}
			lists = append(lists, l)
		}
		for _, spec := range d.URIBL {
			l, err := rbl.ParseList(rbl.DomainList, spec)
			if err != nil {
				return fail(fmt.Errorf("uribl %q: %w", spec, err))
			}
			lists = append(lists, l)
		}
		c, err := rbl.NewChecker(rbl.Config{Resolvers: d.Resolvers, Lists: lists, OnUnknown: d.OnUnknown, Logger: log, HealthInterval: -1})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { c.Close() })
		// One health round (RFC 5782 test points) before the only message:
		// a resolver that hijacks NXDOMAIN is out of the chain from the start.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.CheckHealth(ctx)
		cancel()
		filters = append(filters, c.Filters()...)
	}
	return filters, closeAll, nil
}
