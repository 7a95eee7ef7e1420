package rbl

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Health is a report a gateway can expose (as JSON, on a status page):
// each resolver's state and each list's.
type Health struct {
	Checked   time.Time        `json:"checked"` // the last health round; zero if none ran
	Resolvers []ResolverHealth `json:"resolvers"`
	Lists     []ListHealth     `json:"lists"`
}

// ResolverHealth is one resolver of the chain, in failover order.
type ResolverHealth struct {
	Addr      string            `json:"addr"`
	Up        bool              `json:"up"`                // in rotation for at least one list
	Problem   string            `json:"problem,omitempty"` // why it is out, resolver-wide
	Lists     map[string]string `json:"lists,omitempty"`   // per list: why it fails that list's test points
	Queries   uint64            `json:"queries"`
	Errors    uint64            `json:"errors"`
	Failovers uint64            `json:"failovers"` // lookups handed from it to the next resolver
}

// ListHealth is one list.
type ListHealth struct {
	Name         string    `json:"name"`
	Zone         string    `json:"zone"`
	BackedOff    bool      `json:"backed_off"`
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
	Refusals     uint64    `json:"refusals"` // lookups answered with a refused code
	Unknown      uint64    `json:"unknown"`  // lookups that ended unknown
}

// Health returns the current state without querying anything.
func (c *Checker) Health() Health {
	var h Health
	if ns := c.checked.Load(); ns != 0 {
		h.Checked = time.Unix(0, ns).UTC()
	}
	now := c.now()
	for _, r := range c.resolvers {
		r.mu.Lock()
		rh := ResolverHealth{
			Addr: r.addr, Queries: r.queries.Load(), Errors: r.errors.Load(), Failovers: r.failovers.Load(),
		}
		switch {
		case r.healthErr != nil:
			rh.Problem = r.healthErr.Error()
		case now.Before(r.downUntil):
			rh.Problem = r.downErr.Error()
		}
		for name, err := range r.listErr {
			if rh.Lists == nil {
				rh.Lists = map[string]string{}
			}
			rh.Lists[name] = err.Error()
		}
		rh.Up = rh.Problem == "" && len(rh.Lists) < len(c.lists)
		r.mu.Unlock()
		h.Resolvers = append(h.Resolvers, rh)
	}
	for _, l := range c.lists {
		l.mu.Lock()
		lh := ListHealth{Name: l.Name, Zone: l.Zone, Refusals: l.refusals.Load(), Unknown: l.unknown.Load()}
		if now.Before(l.until) {
			lh.BackedOff, lh.BackoffUntil = true, l.until.UTC()
		}
		l.mu.Unlock()
		h.Lists = append(h.Lists, lh)
	}
	return h
}

// CheckHealth queries every resolver for every list's RFC 5782 test
// points now, updates the rotation and returns the report. A resolver that
// cannot be reached is out for every list; one that answers a test point
// wrongly (127.0.0.2 not listed, or 127.0.0.1 listed: an NXDOMAIN-hijacking
// resolver or a list that lists everything) is out for that list. When
// every resolver fails a list, lookups in it are unknown until one passes.
func (c *Checker) CheckHealth(ctx context.Context) Health {
	var wg sync.WaitGroup
	for _, r := range c.resolvers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.checkResolver(ctx, r)
		}()
	}
	wg.Wait()
	c.checked.Store(c.now().UnixNano())
	return c.Health()
}

func (c *Checker) checkResolver(ctx context.Context, r *resolver) {
	var (
		transport error
		listErr   = map[string]error{}
		passed    int
	)
	for _, l := range c.lists {
		if !l.hasTestPoints() {
			continue
		}
		err := c.checkList(ctx, r, l)
		var te *transportError
		switch {
		case errors.As(err, &te):
			transport = te.err
		case err != nil:
			listErr[l.Name] = err
		default:
			passed++
		}
		if transport != nil || ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return // an interrupted round says nothing about the resolver
	}
	r.mu.Lock()
	wasOut := r.healthErr != nil || c.now().Before(r.downUntil)
	r.healthErr = nil
	if transport != nil {
		r.healthErr = fmt.Errorf("%w: %w", ErrUnhealthy, transport)
	} else {
		// Passing the test points brings a resolver back at once.
		r.consecutive, r.downUntil, r.downErr = 0, time.Time{}, nil
	}
	r.listErr = listErr
	r.lastCheck = c.now()
	up := r.healthErr == nil && len(listErr) < len(c.lists)
	r.mu.Unlock()
	result := "ok"
	if !up || len(listErr) > 0 {
		result = "fail"
		c.log.Warn("rbl resolver failed health check", "resolver", r.addr, "err", r.healthErr, "lists", listErr)
	} else if wasOut {
		c.log.Info("rbl resolver passed health check", "resolver", r.addr)
	}
	c.metrics.Add("portcullis_rbl_health_checks_total", 1, "resolver", r.addr, "result", result)
	c.metrics.Set("portcullis_rbl_resolver_up", b2f(up), "resolver", r.addr)
}

// transportError marks a health-check failure of the resolver itself
// (no answer at all), as opposed to a wrong answer for one list.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }

func (c *Checker) checkList(ctx context.Context, r *resolver, l *listState) error {
	for _, tp := range []struct {
		point  string
		listed bool
	}{{l.TestListed, true}, {l.TestUnlisted, false}} {
		if tp.point == "" || tp.point == "-" {
			continue
		}
		qname, err := l.testName(tp.point)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
		start := c.now()
		msg, err := c.ex.exchange(actx, time.Time{}, r.addr, qname, dns.TypeA)
		cancel()
		c.metrics.Observe("portcullis_rbl_resolver_seconds", c.now().Sub(start).Seconds(), "resolver", r.addr, "result", "health")
		if err != nil {
			if errors.Is(err, ErrTimeout) || errors.Is(err, ErrServFail) || errors.Is(err, ErrRefused) || !isDNSError(err) {
				return &transportError{err: fmt.Errorf("%s: %w", qname, err)}
			}
			return fmt.Errorf("%w: %s: %w", ErrUnhealthy, qname, err)
		}
		raw, err := parseA(msg)
		switch {
		case err != nil:
			return fmt.Errorf("%w: test point %s in %s: %w", ErrUnhealthy, tp.point, l.Zone, err)
		case tp.listed && raw.nx:
			return fmt.Errorf("%w: test point %s is not listed in %s", ErrUnhealthy, tp.point, l.Zone)
		case tp.listed:
			if err := l.classify(raw.addrs); err != nil {
				return fmt.Errorf("%w: test point %s in %s: %w", ErrUnhealthy, tp.point, l.Zone, err)
			}
		case !raw.nx:
			return fmt.Errorf("%w: %s is listed in %s (%s): NXDOMAIN hijack or a list that lists everything",
				ErrUnhealthy, tp.point, l.Zone, raw.addrs[0])
		}
	}
	return nil
}

// isDNSError reports whether err came from an answer (as opposed to the
// network).
func isDNSError(err error) bool {
	return errors.Is(err, ErrRcode) || errors.Is(err, ErrMismatch) || errors.Is(err, ErrTruncated)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
