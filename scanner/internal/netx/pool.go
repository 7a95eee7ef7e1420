package netx

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Conn is a connection with its buffered reader.
type Conn struct {
	NC   net.Conn
	BR   *bufio.Reader
	used time.Time
}

// Base returns c; adapters embed *Conn in their own connection type.
func (c *Conn) Base() *Conn { return c }

// Dial connects within timeout and ctx; prefix names the package in errors.
func Dial(ctx context.Context, network, addr string, timeout time.Duration, bufSize int, prefix string) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return &Conn{NC: nc, BR: bufio.NewReaderSize(nc, bufSize)}, nil
}

// Write writes b with a deadline of d (or ctx's, when earlier).
func (c *Conn) Write(ctx context.Context, d time.Duration, b []byte, prefix string) error {
	c.NC.SetWriteDeadline(Deadline(ctx, d))
	if _, err := c.NC.Write(b); err != nil {
		return fmt.Errorf("%s: write: %w", prefix, err)
	}
	return nil
}

// Pool keeps idle connections for reuse, at most Max, each for at most
// IdleTimeout; one the peer closed meanwhile is noticed (Alive) and dropped.
type Pool[T interface{ Base() *Conn }] struct {
	Max         int
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle []T
}

// Get returns a live idle connection, if there is one.
func (p *Pool[T]) Get() (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		b := c.Base()
		if time.Since(b.used) < p.IdleTimeout && b.BR.Buffered() == 0 && Alive(b.NC) {
			return c, true
		}
		b.NC.Close()
	}
	var zero T
	return zero, false
}

// Put keeps c for reuse; it returns false when the pool is full (the
// caller closes c).
func (p *Pool[T]) Put(c T) bool {
	c.Base().used = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.Max {
		return false
	}
	p.idle = append(p.idle, c)
	return true
}

// Drain removes and returns every idle connection.
func (p *Pool[T]) Drain() []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := p.idle
	p.idle = nil
	return idle
}

// Len is the number of idle connections.
func (p *Pool[T]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
