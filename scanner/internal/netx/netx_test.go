package netx

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (client *Conn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); ch <- c }()
	c, err := Dial(t.Context(), "tcp", ln.Addr().String(), time.Second, 512, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	t.Cleanup(func() { c.NC.Close(); s.Close() })
	return c, s
}

func TestPoolDropsDeadConnections(t *testing.T) {
	p := Pool[*Conn]{Max: 1, IdleTimeout: time.Minute}
	a, sa := pair(t)
	b, _ := pair(t)
	if !p.Put(a) || p.Put(b) {
		t.Fatal("pool of one took two")
	}
	if !Alive(a.NC) {
		t.Fatal("open connection not alive")
	}
	sa.Close() // the peer goes away while a is idle
	deadline := time.Now().Add(5 * time.Second)
	for Alive(a.NC) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := p.Get(); ok {
		t.Fatal("pool handed out a connection whose peer closed")
	}
	// Idle too long.
	c, _ := pair(t)
	p.IdleTimeout = time.Nanosecond
	p.Put(c)
	time.Sleep(time.Millisecond)
	if _, ok := p.Get(); ok {
		t.Fatal("pool handed out a stale connection")
	}
}

func TestCtxErr(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	c, _ := pair(t)
	c.NC.SetReadDeadline(Deadline(ctx, time.Minute))
	_, err := c.NC.Read(make([]byte, 1))
	if err := CtxErr(ctx, "test", err); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
	if CtxErr(t.Context(), "test", nil) != nil {
		t.Fatal("nil error changed")
	}
}
