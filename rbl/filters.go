package rbl

import (
	"context"
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/links"
	"golang.org/x/net/publicsuffix"
)

// Filter names, one per stage.
const (
	ConnectFilterName  = "rbl-connect"
	MailFromFilterName = "rbl-mailfrom"
	DataFilterName     = "rbl-data"
)

// stageFilter runs the checker's lookups of one stage.
type stageFilter struct {
	c     *Checker
	name  string
	stage filter.Stage
}

var (
	_ filter.Filter  = (*stageFilter)(nil)
	_ filter.Stager  = (*stageFilter)(nil)
	_ filter.Readier = (*stageFilter)(nil)
)

// Filters returns a filter for each stage that has lists to ask: connect
// (client IP), mailfrom (MAIL FROM and HELO domains) and data (From
// header domain, link domains and numeric hosts, Received-chain relays).
func (c *Checker) Filters() []filter.Filter {
	var out []filter.Filter
	for _, s := range []struct {
		name    string
		stage   filter.Stage
		targets Target
	}{
		{ConnectFilterName, filter.Connect, ClientIP},
		{MailFromFilterName, filter.MailFrom, HeloDomain | SenderDomain},
		{DataFilterName, filter.Data, ReceivedIPs | LinkIPs | FromDomain | LinkDomains},
	} {
		if c.targets()&s.targets != 0 {
			out = append(out, &stageFilter{c: c, name: s.name, stage: s.stage})
		}
	}
	return out
}

func (c *Checker) targets() Target {
	var t Target
	for _, l := range c.lists {
		t |= l.Targets
	}
	return t
}

func (f *stageFilter) Name() string           { return f.name }
func (f *stageFilter) Stages() []filter.Stage { return []filter.Stage{f.stage} }
func (f *stageFilter) Ready() error           { return f.c.Ready() }

func (f *stageFilter) Check(ctx context.Context, m *filter.Message) (filter.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, f.c.cfg.Deadline)
	defer cancel()
	var res filter.Result
	q := &queries{}
	env := m.Envelope
	switch f.stage {
	case filter.Connect:
		if ip := env.ClientIP.Unmap(); ip.IsValid() && f.c.mayAsk(ip) {
			q.addIP(ClientIP, ip)
		} else if ip.IsValid() {
			q.local = append(q.local, fmt.Sprintf("%s (client): %s, not sent to DNS lists", ip, Range(ip)))
		}
	case filter.MailFrom:
		q.addDomain(SenderDomain, filter.Domain(env.MailFrom))
		if !strings.HasPrefix(env.Helo, "[") {
			q.addDomain(HeloDomain, env.Helo)
		}
	case filter.Data:
		for _, d := range fromDomains(m) {
			q.addDomain(FromDomain, d)
		}
		for _, ip := range receivedIPs(m, f.c.cfg.TrustedNetworks, f.c.cfg.MaxReceived, f.c.mayAsk) {
			q.addIP(ReceivedIPs, ip)
		}
		f.addLinks(&res, q, m)
	}
	answers := f.c.run(ctx, q.items)
	if len(q.local) > 0 {
		detail := strings.Join(q.local[:min(len(q.local), maxDetails)], "; ")
		if len(q.local) > maxDetails {
			detail += fmt.Sprintf("; and %d more", len(q.local)-maxDetails)
		}
		res.Add(SymLocal, f.c.cfg.LocalScore, detail)
	}
	return f.c.result(res, answers), nil
}

// SymLocal marks a client address or numeric link host that is not
// public and was therefore not sent to the DNS lists.
const SymLocal = "RBL_LOCAL"

// addLinks queues the registrable domains and numeric hosts of the
// message's links, at most MaxLinks of them.
func (f *stageFilter) addLinks(res *filter.Result, q *queries, m *filter.Message) {
	t := f.c.targets()
	if t&(LinkDomains|LinkIPs) == 0 {
		return
	}
	max := f.c.cfg.MaxLinks
	seen := map[string]bool{}
	var hosts int
	for _, l := range links.FromMessage(m, 0) {
		key := l.Domain
		if l.IP.IsValid() {
			key = l.IP.String()
		}
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		hosts++
		if hosts > max {
			continue
		}
		if l.IP.IsValid() {
			if f.c.mayAsk(l.IP) {
				q.addIP(LinkIPs, l.IP)
			} else if t&LinkIPs != 0 {
				q.local = append(q.local, fmt.Sprintf("%s (link): %s, not sent to DNS lists", l.IP.Unmap(), Range(l.IP)))
			}
		} else {
			q.addDomain(LinkDomains, l.Domain)
		}
	}
	if hosts > max {
		res.Add("RBL_LINKS_CAPPED", 0, fmt.Sprintf("checked %d of %d link hosts", max, hosts))
		f.c.metrics.Add("portcullis_rbl_links_capped_total", 1)
	}
}

// query is one target to ask the lists with that target about.
type query struct {
	target Target
	value  string
}

type queries struct {
	items []query
	local []string // targets not asked: not public
}

func (q *queries) addIP(t Target, ip netip.Addr) {
	q.items = append(q.items, query{t, ip.Unmap().String()})
}

// addDomain queues the registrable domain of name; names without one
// (bare suffixes, single labels, IP literals) are not asked.
func (q *queries) addDomain(t Target, name string) {
	name, ok := validName(name)
	if !ok {
		return
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return
	}
	q.items = append(q.items, query{t, d})
}

// run asks every list about every query that fits it, in parallel, at
// most MaxParallel at once, and returns the answers in a stable order.
func (c *Checker) run(ctx context.Context, qs []query) []Answer {
	type job struct {
		l     *listState
		value string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, q := range qs {
		for _, l := range c.lists {
			key := l.Name + "\x00" + q.value
			if l.Targets&q.target == 0 || seen[key] {
				continue
			}
			seen[key] = true
			jobs = append(jobs, job{l, q.value})
		}
	}
	answers := make([]Answer, len(jobs))
	sem := make(chan struct{}, c.cfg.MaxParallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		qname, err := c.query(j.l, j.value)
		if err != nil {
			// Names that cannot be asked (too long for the zone) are not
			// evidence either way.
			answers[i] = Answer{List: j.l.Name, Target: j.value, Status: NotListed}
			continue
		}
		if a, ok := c.local(j.l, j.value, qname); ok {
			answers[i] = a // the zone in memory answers at once
			continue
		}
		if a, ok := c.cached(j.l, j.value, qname); ok {
			answers[i] = a // no goroutine for what the cache knows
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// Past the deadline: unknown, and counted as such.
			answers[i] = c.fetch(ctx, j.l, j.value, qname)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			answers[i] = c.fetch(ctx, j.l, j.value, qname)
		}()
	}
	wg.Wait()
	return answers
}

// result turns answers into symbols: one per listing symbol, whose detail
// names the targets, and one LIST_FAIL per list with unknown lookups.
func (c *Checker) result(res filter.Result, answers []Answer) filter.Result {
	type agg struct {
		score   float64
		details []string
		n       int
	}
	listed := map[string]*agg{}
	failed := map[string]*agg{}
	var order []string
	for _, a := range answers {
		switch a.Status {
		case Listed:
			for _, s := range a.Symbols {
				g := listed[s.Name]
				if g == nil {
					g = &agg{score: s.Score}
					listed[s.Name] = g
					order = append(order, s.Name)
				}
				g.n++
				if len(g.details) < maxDetails {
					g.details = append(g.details, listingDetail(a))
				}
			}
		case Unknown:
			l := c.byName[a.List]
			name := l.Symbol + "_FAIL"
			g := failed[name]
			if g == nil {
				g = &agg{score: l.FailScore}
				failed[name] = g
				order = append(order, name)
			}
			g.n++
			if len(g.details) < maxDetails {
				g.details = append(g.details, fmt.Sprintf("%s unknown: %v", a.Target, a.Err))
			}
		}
	}
	sort.Strings(order)
	for _, name := range order {
		g, fail := listed[name], false
		if g == nil {
			g, fail = failed[name], true
		}
		detail := strings.Join(g.details, "; ")
		if g.n > len(g.details) {
			detail += fmt.Sprintf("; and %d more", g.n-len(g.details))
		}
		res.Add(name, g.score, detail)
		if fail {
			res.Demand(c.cfg.OnUnknown)
		}
	}
	return res
}

// maxDetails bounds the targets named in one symbol's detail.
const maxDetails = 5

func listingDetail(a Answer) string {
	codes := make([]string, len(a.Codes))
	for i, c := range a.Codes {
		codes[i] = c.String()
	}
	s := fmt.Sprintf("%s listed in %s: %s", a.Target, a.List, strings.Join(codes, ","))
	if a.Reason != "" {
		s += " (" + a.Reason + ")"
	}
	return s
}

// maxFromDomains bounds the From-header domains asked about: a From
// field may list any number of addresses.
const maxFromDomains = 5

// fromDomains returns the distinct domains of the From header's
// addresses, at most maxFromDomains.
func fromDomains(m *filter.Message) []string {
	v := m.Header().Get("From")
	if v == "" {
		return nil
	}
	var out []string
	if addrs, err := mail.ParseAddressList(v); err == nil {
		for _, a := range addrs {
			if d := filter.Domain(a.Address); d != "" && !slices.Contains(out, d) {
				out = append(out, d)
			}
			if len(out) == maxFromDomains {
				break
			}
		}
		return out
	}
	// Malformed: the text after the last '@' still names a domain.
	if i := strings.LastIndexByte(v, '@'); i >= 0 {
		d := strings.FieldsFunc(v[i+1:], func(r rune) bool { return strings.ContainsRune("<>\"' ,;()", r) })
		if len(d) > 0 {
			out = append(out, strings.ToLower(d[0]))
		}
	}
	return out
}

// receivedIPs walks the Received headers from the top (ours) down, skips
// hops whose sending address is in trusted, and returns the sending
// addresses of at most max hops below them that may be asked about.
func receivedIPs(m *filter.Message, trusted []netip.Prefix, max int, mayAsk func(netip.Addr) bool) []netip.Addr {
	if len(trusted) == 0 {
		return nil
	}
	var out []netip.Addr
	for _, v := range m.Header().Values("Received") {
		ip, ok := receivedFrom(v)
		if !ok {
			continue
		}
		if inAny(trusted, ip) {
			continue
		}
		if mayAsk(ip) {
			out = append(out, ip)
		}
		if len(out) >= max {
			break
		}
	}
	return out
}

// receivedFrom finds the sending address of a Received header: the first
// bracketed IP literal of its "from" clause, e.g.
// "from mx.example.com (mx.example.com [192.0.2.1]) by ...".
func receivedFrom(v string) (netip.Addr, bool) {
	// Only the "from" clause: up to " by ", in any case. (Not via
	// strings.ToLower, which changes the length of invalid UTF-8.)
	end := len(v)
	for i := 0; i+4 <= len(v); i++ {
		if v[i] == ' ' && v[i+3] == ' ' && v[i+1]|0x20 == 'b' && v[i+2]|0x20 == 'y' {
			end = i
			break
		}
	}
	s := v[:end]
	for {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			return netip.Addr{}, false
		}
		j := strings.IndexByte(s[i:], ']')
		if j < 0 {
			return netip.Addr{}, false
		}
		lit := strings.TrimPrefix(strings.ToLower(s[i+1:i+j]), "ipv6:")
		if ip, err := netip.ParseAddr(lit); err == nil {
			return ip.Unmap(), true
		}
		s = s[i+j:]
	}
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
