package smtpd

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// ListenerLimits bounds the connections a LimitListener lets through.
type ListenerLimits struct {
	// MaxConns bounds open connections in total; 0 means 1,000.
	MaxConns int
	// MaxPerIP bounds open connections from one client address; 0 means 20.
	MaxPerIP int
	Metrics  filter.Metrics // nil discards
}

const tooMany = "421 4.7.0 Too many connections, please try again later\r\n"

// LimitListener wraps l so that a connection over a limit is answered
// 421 4.7.0 and closed before go-smtp sees it; the slot of a connection
// is freed when it is closed.
func LimitListener(l net.Listener, lim ListenerLimits) net.Listener {
	if lim.MaxConns <= 0 {
		lim.MaxConns = 1000
	}
	if lim.MaxPerIP <= 0 {
		lim.MaxPerIP = 20
	}
	return &limitListener{Listener: l, lim: lim, metrics: filter.OrNop(lim.Metrics), perIP: map[netip.Addr]int{}}
}

type limitListener struct {
	net.Listener
	lim     ListenerLimits
	metrics filter.Metrics

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c)
		if reason := l.take(ip); reason != "" {
			l.metrics.Add("portcullis_smtpd_connections_refused_total", 1, "reason", reason)
			go refuse(c)
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.give(ip) }}, nil
	}
}

// refuse answers the excess connection without holding up Accept.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte(tooMany))
	_ = c.Close()
}

func (l *limitListener) take(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.lim.MaxConns:
		return "total"
	case l.perIP[ip] >= l.lim.MaxPerIP:
		return "per-ip"
	}
	l.total++
	l.perIP[ip]++
	return ""
}

func (l *limitListener) give(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()

	// A read buffer for the session goroutine (go-smtp reads through a
	// 4 KiB bufio.Reader, one system call per 4 KiB of DATA): held only
	// while it has unread bytes, so an idle connection holds none.
	buf  *[]byte
	r, w int
	err  error // the socket's error, returned once the buffer is drained

	// The DATA handoff (data.go), all on the session goroutine: last is
	// the last byte Read returned; while handoff is set, Read answers
	// errHandoff (once) instead of reading; inject is served by Read
	// before anything else; poison, once set, is every Read's answer.
	last    byte
	handoff bool
	inject  []byte
	poison  error
}

// readBufSize is the most a connection reads from its socket at once.
const readBufSize = 64 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// Read serves go-smtp's small reads from one large read of the socket:
// for a 176 KB message 4 system calls instead of 43.
func (c *limitedConn) Read(p []byte) (int, error) {
	switch {
	case c.poison != nil:
		return 0, c.poison
	case c.handoff:
		c.handoff = false
		return 0, errHandoff
	case len(c.inject) > 0:
		n := copy(p, c.inject)
		c.inject = c.inject[n:]
		c.last = p[n-1]
		return n, nil
	}
	if c.buf == nil && c.err == nil && len(p) >= readBufSize {
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.last = p[n-1]
		}
		return n, err
	}
	b, err := c.peek()
	if len(b) == 0 {
		return 0, err
	}
	n := copy(p, b)
	c.last = p[n-1]
	c.advance(n)
	return n, nil
}

// peek returns the buffered bytes not read yet, reading the socket when
// there are none; the error is the socket's, once those are read.
func (c *limitedConn) peek() ([]byte, error) {
	if c.buf == nil {
		if c.err != nil {
			err := c.err
			c.err = nil
			return nil, err
		}
		c.buf = readBufs.Get().(*[]byte)
		n, err := c.Conn.Read(*c.buf)
		c.r, c.w, c.err = 0, n, err
		if n == 0 {
			c.drop()
			err, c.err = c.err, nil
			return nil, err
		}
	}
	return (*c.buf)[c.r:c.w], nil
}

// advance marks n bytes of peek's as read.
func (c *limitedConn) advance(n int) {
	if c.r += n; c.r == c.w {
		c.drop()
	}
}

func (c *limitedConn) drop() {
	readBufs.Put(c.buf)
	c.buf, c.r, c.w = nil, 0, 0
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
