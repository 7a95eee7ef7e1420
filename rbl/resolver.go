package rbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// resolver is one recursive resolver of the chain with its health.
type resolver struct {
	addr string

	mu          sync.Mutex
	consecutive int              // failures in a row
	downUntil   time.Time        // out of rotation until then (passive)
	downErr     error            // the failure that took it out
	healthErr   error            // resolver-wide health-check failure
	listErr     map[string]error // per-list health-check failures
	lastCheck   time.Time

	queries, errors, failovers atomic.Uint64
}

// usable reports whether lookups in list may go to r now, and why not.
func (r *resolver) usable(list string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.healthErr != nil:
		return r.healthErr
	case r.listErr[list] != nil:
		return r.listErr[list]
	case now.Before(r.downUntil):
		return r.downErr
	}
	return nil
}

// rawAnswer is what one resolver said about one name.
type rawAnswer struct {
	nx     bool // NXDOMAIN or no A record: not listed
	addrs  []netip.Addr
	ttl    time.Duration // from the answer, or the SOA for negative answers
	hasTTL bool
}

// exchanger sends one query to one resolver, over UDP and, when the
// answer is truncated, again over TCP.
//
// UDP sockets are kept in a small pool per resolver: opening, connecting
// and closing a socket per query costs more CPU than the query itself. A
// socket serves one query at a time, answers with a stale ID are skipped
// (miekg/dns does that on packet connections), and a socket is retired
// after maxSocketUses queries or socketLifetime, so the source port keeps
// changing (RFC 5452 §9.2), and after any error.
type exchanger struct {
	udp, tcp *dns.Client

	mu   sync.Mutex
	idle map[string][]*pooledConn
}

type pooledConn struct {
	*dns.Conn
	uses int
	born time.Time
	buf  [dns.MinMsgSize]byte // the query packed, then the answer read
}

const (
	maxIdleSockets = 64
	maxSocketUses  = 100
	socketLifetime = 10 * time.Second
)

func newExchanger(timeout time.Duration) *exchanger {
	return &exchanger{
		udp:  &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.MinMsgSize},
		tcp:  &dns.Client{Net: "tcp", Timeout: timeout},
		idle: map[string][]*pooledConn{},
	}
}

// get returns an idle socket to addr or dials one.
func (e *exchanger) get(ctx context.Context, addr string) (*pooledConn, error) {
	e.mu.Lock()
	for n := len(e.idle[addr]); n > 0; n = len(e.idle[addr]) {
		pc := e.idle[addr][n-1]
		e.idle[addr] = e.idle[addr][:n-1]
		if time.Since(pc.born) < socketLifetime {
			e.mu.Unlock()
			return pc, nil
		}
		pc.Close()
	}
	e.mu.Unlock()
	conn, err := e.udp.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &pooledConn{Conn: conn, born: time.Now()}, nil
}

// put returns a socket that served a query cleanly.
func (e *exchanger) put(addr string, pc *pooledConn) {
	pc.uses++
	if pc.uses >= maxSocketUses {
		pc.Close()
		return
	}
	e.mu.Lock()
	if len(e.idle[addr]) < maxIdleSockets {
		e.idle[addr] = append(e.idle[addr], pc)
		pc = nil
	}
	e.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

// close closes every idle socket.
func (e *exchanger) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for addr, conns := range e.idle {
		for _, pc := range conns {
			pc.Close()
		}
		delete(e.idle, addr)
	}
}

// exchange asks addr for (qname, qtype) by deadline (the zero time: by
// ctx's deadline or the client timeout) and returns the answer message
// with a NOERROR or NXDOMAIN rcode; every other outcome is an error
// wrapping one of the package sentinels. A deadline rather than a context
// of its own: a lookup then costs no context and timer beyond ctx's.
func (e *exchanger) exchange(ctx context.Context, deadline time.Time, addr, qname string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(qname, qtype)
	r, err := e.udpOnce(ctx, deadline, addr, q)
	if err == nil && r.Truncated {
		tctx := ctx
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			tctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		r, err = e.tcpOnce(tctx, addr, q)
		if err != nil {
			return nil, fmt.Errorf("%w, then over TCP: %w", ErrTruncated, err)
		}
		if r.Truncated {
			return nil, fmt.Errorf("%w over TCP", ErrTruncated)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, qname) || r.Question[0].Qtype != qtype {
		return nil, ErrMismatch
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return r, nil
	case dns.RcodeServerFailure:
		return nil, ErrServFail
	case dns.RcodeRefused:
		return nil, ErrRefused
	}
	return nil, fmt.Errorf("%w %s", ErrRcode, dns.RcodeToString[r.Rcode])
}

// udpOnce is one exchange over a pooled socket, which is closed when ctx
// ends so that a cancelled message does not wait for the read deadline.
func (e *exchanger) udpOnce(ctx context.Context, deadline time.Time, addr string, q *dns.Msg) (*dns.Msg, error) {
	pc, err := e.get(ctx, addr)
	if err != nil {
		return nil, netErr(ctx, err)
	}
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	r, err := pc.exchange(ctx, deadline, q, e.udp.Timeout)
	if !stop() || err != nil {
		pc.Close() // closed by the cancellation, or in a state we do not trust
		if err == nil {
			err = ctx.Err()
		}
		return nil, netErr(ctx, err)
	}
	e.put(addr, pc)
	return r, nil
}

// exchange writes q and reads the answer with q's ID (an answer with
// another ID is a late one to an earlier query on this socket, skipped),
// by the earliest of deadline (unless zero), ctx's deadline and timeout
// from now. It is miekg/dns's exchange on a
// packet connection without its per-query buffers: the query is packed
// into and the answer read from pc's buffer, which the unpacked message
// does not reference (miekg/dns copies names, addresses and strings).
func (pc *pooledConn) exchange(ctx context.Context, deadline time.Time, q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	if t := time.Now().Add(timeout); deadline.IsZero() || t.Before(deadline) {
		deadline = t
	}
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc := pc.Conn.Conn
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	out, err := q.PackBuffer(pc.buf[:])
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(out); err != nil {
		return nil, err
	}
	for {
		n, err := nc.Read(pc.buf[:])
		if err != nil {
			return nil, err
		}
		if n < 12 { // a DNS header
			return nil, dns.ErrShortRead
		}
		r := new(dns.Msg)
		if err := r.Unpack(pc.buf[:n]); err != nil {
			return nil, err
		}
		if r.Id == q.Id {
			return r, nil
		}
	}
}

// tcpOnce is one exchange over a new TCP connection.
func (e *exchanger) tcpOnce(ctx context.Context, addr string, q *dns.Msg) (*dns.Msg, error) {
	conn, err := e.tcp.DialContext(ctx, addr)
	if err != nil {
		return nil, netErr(ctx, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := e.tcp.ExchangeWithConnContext(ctx, q, conn)
	if err != nil {
		return nil, netErr(ctx, err)
	}
	return r, nil
}

// netErr classifies a transport error: a deadline is ErrTimeout, a
// cancelled context its own error.
func netErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// parseA reads the A records and the TTL of an answer to an A query.
// Only NXDOMAIN, or NOERROR with no answer records (NODATA), is "not
// listed"; the answer section may hold A records of the name asked and
// their signatures, nothing else. A CNAME (a chain, a loop), an AAAA, a
// TXT or an A record of another name is not an answer to the question:
// ErrNotAnswer, unknown, never "not listed".
func parseA(r *dns.Msg) (rawAnswer, error) {
	var a rawAnswer
	qname := ""
	if len(r.Question) > 0 {
		qname = r.Question[0].Name
	}
	for _, rr := range r.Answer {
		h := rr.Header()
		switch rec := rr.(type) {
		case *dns.A:
			if !strings.EqualFold(h.Name, qname) {
				return rawAnswer{}, fmt.Errorf("%w: an A record of %s", ErrNotAnswer, h.Name)
			}
			ip, ok := netip.AddrFromSlice(rec.A.To4())
			if !ok {
				return rawAnswer{}, fmt.Errorf("%w: a malformed A record", ErrNotAnswer)
			}
			a.addrs = append(a.addrs, ip)
			t := time.Duration(h.Ttl) * time.Second
			if !a.hasTTL || t < a.ttl {
				a.ttl, a.hasTTL = t, true
			}
		case *dns.RRSIG:
		default:
			return rawAnswer{}, fmt.Errorf("%w: %s record in the answer to an A query", ErrNotAnswer, dns.TypeToString[h.Rrtype])
		}
	}
	if r.Rcode == dns.RcodeNameError && len(a.addrs) > 0 {
		return rawAnswer{}, fmt.Errorf("%w: NXDOMAIN with A records", ErrNotAnswer)
	}
	if len(a.addrs) == 0 {
		a.nx = true
		// RFC 2308 §5: a negative answer lives for the SOA's minimum, at
		// most the SOA record's own TTL.
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				a.ttl, a.hasTTL = time.Duration(min(soa.Minttl, soa.Hdr.Ttl))*time.Second, true
			}
		}
	}
	return a, nil
}

// parseTXT joins the TXT strings of an answer.
func parseTXT(r *dns.Msg) string {
	var parts []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			parts = append(parts, strings.Join(t.Txt, ""))
		}
	}
	s := strings.Join(parts, "; ")
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	return strings.ToValidUTF8(s, "?")
}

// maxReason bounds the TXT reason kept from a listing.
const maxReason = 512
