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
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
