package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
	"golang.org/x/time/rate"
)

// TLSMode is how the relay uses STARTTLS.
type TLSMode int

const (
	// TLSOpportunistic uses STARTTLS when the next hop offers it, without
	// verifying its certificate (RFC 7435), and plain text otherwise. The
	// default.
	TLSOpportunistic TLSMode = iota
	// TLSRequired fails (temporarily) a next hop that does not offer
	// STARTTLS, and verifies the certificate with Config.TLS.
	TLSRequired
	// TLSDisabled never uses STARTTLS.
	TLSDisabled
)

// Defaults of the zero Config fields.
const (
	DefaultLocalName       = "localhost"
	DefaultDialTimeout     = 30 * time.Second
	DefaultCommandTimeout  = 5 * time.Minute
	DefaultDataTimeout     = 10 * time.Minute // RFC 5321 §4.5.3.2
	DefaultMaxConnsPerHost = 10
	DefaultHostDownTime    = time.Minute
)

// Route says where mail for a recipient domain goes.
type Route struct {
	// Hosts are the next hops, "host:port". Transactions are spread over
	// them: each starts one host further than the last (round-robin) and
	// moves on through the others until one answers; a host that could
	// not be reached is tried after the live ones for HostDownTime.
	Hosts []string
	// Fallback hosts are used for the recipients that every primary host
	// refused with a policy or blocklist reply (IsPolicyRefusal), e.g. a
	// relay whose address the recipient's blocklist does not list.
	Fallback []string
	// LMTP speaks LMTP (RFC 2033) to these hosts, e.g. a mailbox store.
	LMTP bool
}

// Config configures an SMTP relay.
type Config struct {
	// Routes by recipient domain (lower case); the route under "*" is
	// used for every other domain. A domain without a route and no "*"
	// fails temporarily with ErrNoRoute (a configuration error must not
	// bounce mail).
	Routes map[string]Route
	// LocalName is sent in EHLO/LHLO; "" means DefaultLocalName.
	LocalName string
	TLSMode   TLSMode
	// TLS is the client TLS configuration for TLSRequired (ServerName is
	// filled from the host). nil means the system roots.
	TLS *tls.Config
	// DialTimeout bounds connecting; CommandTimeout each command's reply;
	// DataTimeout the reply after the message. 0 means the Default
	// constants (30 s, 5 min, 10 min).
	DialTimeout, CommandTimeout, DataTimeout time.Duration
	// MaxConnsPerHost bounds concurrent connections to one next hop; 0
	// means DefaultMaxConnsPerHost.
	MaxConnsPerHost int
	// HostDownTime is how long a next hop that could not be reached (a
	// connection or greeting failure) is tried only after the live hosts
	// of its route; 0 means DefaultHostDownTime. It is never skipped: when
	// every host is down they are all tried.
	HostDownTime time.Duration
	// RatePerHost throttles transactions per second to one next hop, with
	// bursts of RateBurst (0 means 1); 0 means no throttling.
	RatePerHost float64
	RateBurst   int
	// Dial replaces net.Dialer (tests, proxies); nil means net.Dialer.
	Dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil is a no-op
}

// SMTP relays messages to next hops over SMTP or LMTP with go-smtp's
// client. It implements queue.Deliverer and is safe for concurrent use.
type SMTP struct {
	cfg Config

	mu       sync.Mutex
	hosts    map[string]*hostState
	starttls map[string]bool   // next hops seen offering STARTTLS
	next     map[string]uint64 // round-robin position per host list
}

type hostState struct {
	conns     chan struct{}
	limiter   *rate.Limiter
	downUntil time.Time // guarded by SMTP.mu
}

var _ queue.Deliverer = (*SMTP)(nil)

// New returns an SMTP relay over cfg.Routes.
func New(cfg Config) (*SMTP, error) {
	if len(cfg.Routes) == 0 {
		return nil, fmt.Errorf("%w: none", ErrNoRoutes)
	}
	routes := make(map[string]Route, len(cfg.Routes))
	for d, r := range cfg.Routes {
		if len(r.Hosts) == 0 {
			return nil, fmt.Errorf("%w: route %q has no hosts", ErrNoRoutes, d)
		}
		for _, h := range append(append([]string(nil), r.Hosts...), r.Fallback...) {
			if _, _, err := net.SplitHostPort(h); err != nil {
				return nil, fmt.Errorf("%w: route %q: host %q: %w", ErrNoRoutes, d, h, err)
			}
		}
		routes[strings.ToLower(d)] = r
	}
	cfg.Routes = routes
	if cfg.LocalName == "" {
		cfg.LocalName = DefaultLocalName
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.HostDownTime <= 0 {
		cfg.HostDownTime = DefaultHostDownTime
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = 1
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: cfg.DialTimeout}
		cfg.Dial = d.DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = filter.OrNop(cfg.Metrics)
	return &SMTP{cfg: cfg, hosts: make(map[string]*hostState), starttls: make(map[string]bool), next: make(map[string]uint64)}, nil
}

// NewLMTP returns a relay that speaks LMTP to hosts for every recipient,
// e.g. to a mailbox store.
func NewLMTP(hosts []string, cfg Config) (*SMTP, error) {
	cfg.Routes = map[string]Route{"*": {Hosts: hosts, LMTP: true}}
	return New(cfg)
}

func (d *SMTP) route(rcpt string) (Route, bool) {
	if r, ok := d.cfg.Routes[filter.Domain(rcpt)]; ok {
		return r, true
	}
	r, ok := d.cfg.Routes["*"]
	return r, ok
}

// Deliver implements queue.Deliverer: recipients are grouped by route, each group
// sent in one transaction; recipients every primary host refused by
// policy are sent again through the route's fallback hosts.
func (d *SMTP) Deliver(ctx context.Context, m *queue.Outgoing) []error {
	errs := make([]error, len(m.To))
	type group struct {
		r   Route
		idx []int
	}
	var groups []*group
	byKey := map[string]*group{}
	for i, rcpt := range m.To {
		r, ok := d.route(rcpt)
		if !ok {
			errs[i] = fmt.Errorf("%w for %s", ErrNoRoute, filter.Domain(rcpt))
			continue
		}
		key := fmt.Sprint(r.Hosts, r.Fallback, r.LMTP) // one transaction per distinct route
		g := byKey[key]
		if g == nil {
			g = &group{r: r}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	for _, g := range groups {
		rcpts := make([]string, len(g.idx))
		for j, i := range g.idx {
			rcpts[j] = m.To[i]
		}
		res := d.sendHosts(ctx, g.r.Hosts, g.r.LMTP, m, rcpts)
		if len(g.r.Fallback) > 0 {
			var again []int
			for j := range rcpts {
				if IsPolicyRefusal(res[j]) {
					again = append(again, j)
				}
			}
			if len(again) > 0 {
				sub := make([]string, len(again))
				for k, j := range again {
					sub[k] = rcpts[j]
				}
				d.cfg.Logger.WarnContext(ctx, "relay: primary route refused by policy; using fallback", "id", m.ID, "err", res[again[0]], "fallback", g.r.Fallback)
				d.cfg.Metrics.Add("portcullis_queue_fallback_total", 1)
				fres := d.sendHosts(ctx, g.r.Fallback, g.r.LMTP, m, sub)
				for k, j := range again {
					res[j] = fres[k]
				}
			}
		}
		for j, i := range g.idx {
			errs[i] = res[j]
		}
	}
	return errs
}

// sendHosts tries the hosts of a route in their order for this
// transaction. A host that could not be reached or failed before
// answering for the recipients (connection errors, a refusal at the
// greeting, EHLO or MAIL) passes them to the next; a host that answered
// for them decides. The last host's errors are returned.
func (d *SMTP) sendHosts(ctx context.Context, hosts []string, lmtp bool, m *queue.Outgoing, rcpts []string) []error {
	var res []error
	for _, h := range d.order(hosts) {
		var answered bool
		res, answered = d.send(ctx, h, lmtp, m, rcpts)
		if answered {
			d.setDown(h, false)
			return res
		}
		var ce *ConnError
		if errors.As(res[0], &ce) && ctx.Err() == nil {
			d.setDown(h, true)
		}
	}
	return res
}

// order returns hosts in the order one transaction tries them: starting
// one further than the last transaction on the same hosts (round-robin),
// live hosts first, then those recently unreachable (still tried: a
// host's mark is never the reason mail waits).
func (d *SMTP) order(hosts []string) []string {
	if len(hosts) < 2 {
		return hosts
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := strings.Join(hosts, ",")
	start := int(d.next[key] % uint64(len(hosts)))
	d.next[key]++
	now := time.Now()
	live := make([]string, 0, len(hosts))
	var down []string
	for i := range hosts {
		h := hosts[(start+i)%len(hosts)]
		if s := d.hosts[h]; s != nil && now.Before(s.downUntil) {
			down = append(down, h)
			continue
		}
		live = append(live, h)
	}
	return append(live, down...)
}

// setDown marks a host unreachable for HostDownTime, or live again.
func (d *SMTP) setDown(host string, down bool) {
	s := d.host(host)
	d.mu.Lock()
	defer d.mu.Unlock()
	if down {
		if time.Now().After(s.downUntil) {
			d.cfg.Logger.Warn("relay: next hop unreachable; trying the others first", "host", host, "for", d.cfg.HostDownTime)
		}
		s.downUntil = time.Now().Add(d.cfg.HostDownTime)
	} else {
		s.downUntil = time.Time{}
	}
}

func (d *SMTP) host(h string) *hostState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.hosts[h]
	if s == nil {
		s = &hostState{conns: make(chan struct{}, d.cfg.MaxConnsPerHost)}
		if d.cfg.RatePerHost > 0 {
			s.limiter = rate.NewLimiter(rate.Limit(d.cfg.RatePerHost), d.cfg.RateBurst)
		}
		d.hosts[h] = s
	}
	return s
}

// send runs one transaction with one host. answered reports whether the
// host gave per-recipient answers (RCPT replies or later); before that,
// every recipient carries the same error.
func (d *SMTP) send(ctx context.Context, host string, lmtp bool, m *queue.Outgoing, rcpts []string) (res []error, answered bool) {
	start := time.Now()
	defer func() {
		outcome := "ok"
		for _, err := range res {
			if err != nil {
				outcome = queue.Classify(err).String()
				break
			}
		}
		d.cfg.Metrics.Observe("portcullis_queue_smtp_seconds", time.Since(start).Seconds(), "host", host, "outcome", outcome)
		d.cfg.Logger.DebugContext(ctx, "relay: smtp transaction", "id", m.ID, "host", host, "rcpts", len(rcpts), "outcome", outcome, "elapsed", time.Since(start))
	}()
	hs := d.host(host)
	select {
	case hs.conns <- struct{}{}:
		defer func() { <-hs.conns }()
	case <-ctx.Done():
		return all(len(rcpts), &ConnError{Host: host, Op: "wait for connection slot", Err: ctx.Err()}), false
	}
	if hs.limiter != nil {
		if err := hs.limiter.Wait(ctx); err != nil {
			return all(len(rcpts), &ConnError{Host: host, Op: "rate limit", Err: err}), false
		}
	}
	c, err := d.dial(ctx, host, lmtp)
	if err != nil {
		return all(len(rcpts), err), false
	}
	defer c.Close()
	if err := c.Mail(m.From, &smtp.MailOptions{Size: m.Size}); err != nil {
		return all(len(rcpts), replyError(host, "MAIL", err)), false
	}
	res = make([]error, len(rcpts))
	accepted := 0
	for i, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			res[i] = replyError(host, "RCPT", err)
			var re *ReplyError
			if !errors.As(res[i], &re) {
				return all(len(rcpts), res[i]), false // the connection broke
			}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		_ = c.Quit()
		return res, true
	}
	w, err := c.Data()
	if err != nil {
		err = replyError(host, "DATA", err)
		for i := range res {
			if res[i] == nil {
				res[i] = err
			}
		}
		return res, true
	}
	if _, err := io.Copy(w, m.Body()); err != nil {
		err = &ConnError{Host: host, Op: "DATA", Err: err}
		for i := range res {
			if res[i] == nil {
				res[i] = err
			}
		}
		return res, true
	}
	if lmtp {
		_, err := w.CloseWithLMTPResponse()
		var lerr smtp.LMTPDataError
		if errors.As(err, &lerr) {
			for i, r := range rcpts {
				if se, ok := lerr[r]; ok && res[i] == nil {
					res[i] = replyError(host, "DATA", se)
				}
			}
		} else if err != nil {
			err = replyError(host, "DATA", err)
			for i := range res {
				if res[i] == nil {
					res[i] = err
				}
			}
		}
	} else if err := w.Close(); err != nil {
		err = replyError(host, "DATA", err)
		for i := range res {
			if res[i] == nil {
				res[i] = err
			}
		}
	}
	_ = c.Quit()
	return res, true
}

// dial connects and greets a next hop, with STARTTLS per TLSMode. The
// connection is closed when ctx ends, so a cancelled delivery never hangs
// on a socket.
func (d *SMTP) dial(ctx context.Context, host string, lmtp bool) (*smtp.Client, error) {
	d.mu.Lock()
	knownTLS := d.starttls[host]
	d.mu.Unlock()
	useTLS := d.cfg.TLSMode == TLSRequired || d.cfg.TLSMode == TLSOpportunistic && knownTLS
	c, err := d.connect(ctx, host, lmtp, useTLS)
	if err != nil || useTLS || d.cfg.TLSMode == TLSDisabled {
		if err != nil && useTLS && d.cfg.TLSMode == TLSOpportunistic {
			// The host stopped offering STARTTLS or its handshake
			// failed: opportunistic TLS falls back to plain text.
			d.mu.Lock()
			delete(d.starttls, host)
			d.mu.Unlock()
			var re *ReplyError
			if !errors.As(err, &re) {
				return d.connect(ctx, host, lmtp, false)
			}
		}
		return c, err
	}
	if ok, _ := c.Extension("STARTTLS"); ok && !lmtp {
		// Seen for the first time: remember it and reconnect with
		// STARTTLS (go-smtp starts TLS only on a fresh client).
		_ = c.Quit()
		c.Close()
		d.mu.Lock()
		d.starttls[host] = true
		d.mu.Unlock()
		return d.dial(ctx, host, lmtp)
	}
	return c, nil
}

func (d *SMTP) connect(ctx context.Context, host string, lmtp, useTLS bool) (*smtp.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	raw, err := d.cfg.Dial(dctx, "tcp", host)
	cancel()
	if err != nil {
		return nil, &ConnError{Host: host, Op: "dial", Err: err}
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	var conn net.Conn = &ctxConn{Conn: raw, stop: stop}
	var c *smtp.Client
	if useTLS {
		tc := d.cfg.TLS.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(host)
		}
		if d.cfg.TLSMode == TLSOpportunistic {
			tc.InsecureSkipVerify = true // RFC 7435: encrypt without authenticating
		}
		if lmtp {
			return nil, &ConnError{Host: host, Op: "STARTTLS", Err: errors.New("STARTTLS over LMTP is not supported")}
		}
		conn.SetDeadline(time.Now().Add(d.cfg.CommandTimeout))
		c, err = smtp.NewClientStartTLS(conn, tc)
		if err != nil {
			conn.Close()
			if d.cfg.TLSMode == TLSRequired && strings.Contains(err.Error(), "STARTTLS") {
				return nil, &ConnError{Host: host, Op: "STARTTLS", Err: ErrTLSRequired}
			}
			return nil, replyError(host, "STARTTLS", err)
		}
	} else if lmtp {
		c = smtp.NewClientLMTP(conn)
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = d.cfg.CommandTimeout
	c.SubmissionTimeout = d.cfg.DataTimeout
	if err := c.Hello(d.cfg.LocalName); err != nil {
		c.Close()
		return nil, replyError(host, "EHLO", err)
	}
	if !useTLS && d.cfg.TLSMode == TLSRequired {
		c.Close()
		return nil, &ConnError{Host: host, Op: "STARTTLS", Err: ErrTLSRequired}
	}
	return c, nil
}

// ctxConn stops the context watch when the connection closes.
type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// all returns n copies of err: the same outcome for every recipient.
func all(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
