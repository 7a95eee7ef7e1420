package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
)

// generation is one set of filters the gateway has served with. SMTP
// sessions acquire the current one and keep it for their whole life; a
// reload that changes the DNS lists starts a new generation, and the old
// one's lists are closed when its last session releases it.
type generation struct {
	filters *config.Filters
	dns     config.DNS
	refs    atomic.Int64 // sessions, plus one while current
}

func newGeneration(f *config.Filters, dns config.DNS) *generation {
	gen := &generation{filters: f, dns: dns}
	gen.refs.Store(1)
	return gen
}

// put drops a reference; the last one of a replaced generation closes
// its lists.
func (gen *generation) put() {
	if gen.refs.Add(-1) == 0 {
		gen.filters.CloseLists()
	}
}

// acquire is smtpd.Config.Acquire: the current pipeline and its release.
func (g *running) acquire() (*filter.Pipeline, func()) {
	for {
		gen := g.gen.Load()
		if gen.refs.Add(1) > 1 {
			return gen.filters.Pipeline, gen.put
		}
		// Replaced and drained between the Load and the Add: undo, and
		// take the new current one.
		gen.refs.Add(-1)
	}
}

// pipeline is the current pipeline (readiness, re-scans).
func (g *running) pipeline() *filter.Pipeline { return g.gen.Load().filters.Pipeline }

// listsReadyTimeout bounds the wait for new DNS lists' first health
// round before a reload gives up on them.
const listsReadyTimeout = 15 * time.Second

// reload re-reads the configuration file and the rules, all or nothing:
// a file that no longer parses or checks, new DNS lists that cannot be
// built or do not become ready, or rules that fail to compile or change
// a verdict of their regression corpus refuse the whole reload, and the
// old rules and lists keep serving (the log says why, and
// portcullis_gateway_reloads_total{result="refused"} counts it). New DNS
// lists serve new SMTP sessions; sessions in flight finish on the old
// ones.
func (g *running) reload(ctx context.Context) {
	refuse := func(what string, err error) {
		g.metrics.Add("portcullis_gateway_reloads_total", 1, "result", "refused")
		g.log.Error("reload refused, the old rules and lists keep serving", "what", what, "err", err)
	}
	cur := g.gen.Load()
	var next *config.Filters
	var nextDNS config.DNS
	if g.loadConfig != nil {
		cfg, err := g.loadConfig()
		if err != nil {
			refuse("config", err)
			return
		}
		if !reflect.DeepEqual(cfg.DNS, cur.dns) {
			nf, err := cur.filters.WithLists(ctx, cfg, g.options)
			if err != nil {
				refuse("dns", err)
				return
			}
			if err := listsReady(ctx, nf); err != nil {
				nf.CloseLists()
				refuse("dns", err)
				return
			}
			next, nextDNS = nf, cfg.DNS
		}
	}
	if r := cur.filters.Rules; r != nil {
		if err := r.Reload(ctx); err != nil {
			if next != nil {
				next.CloseLists()
			}
			refuse("rules", err)
			return
		}
		g.log.Info("rules reloaded")
	} else {
		g.log.Info("reload: no rule files configured (rules from the fleet follow its publications)")
	}
	if next != nil {
		g.gen.Store(newGeneration(next, nextDNS))
		cur.put()
		g.log.Info("dns lists reloaded", "lists", strings.Join(append(append([]string(nil), nextDNS.DNSBL...), nextDNS.URIBL...), ","),
			"filters", strings.Join(next.Names(), ","))
	}
	g.metrics.Add("portcullis_gateway_reloads_total", 1, "result", "ok")
}

// listsReady waits for new lists' first health round.
func listsReady(ctx context.Context, f *config.Filters) error {
	if f.Lists == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, listsReadyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f.Lists.Ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dns lists not ready after %s: %w", listsReadyTimeout, errors.Join(err, ctx.Err()))
		case <-tick.C:
		}
	}
}
