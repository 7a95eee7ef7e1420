package smtpd_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/router"
	"github.com/portcullis-mail/portcullis/smtpd"
)

// With Acquire, a session keeps the pipeline it began on; new sessions
// get the current one; each acquired pipeline is released once.
func TestAcquireKeepsPipelinePerSession(t *testing.T) {
	strict := filter.NewPipeline(filter.Options{}, filter.Func("words", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		b, _ := io.ReadAll(m.Reader())
		if strings.Contains(string(b), "forbidden") {
			r.Demand(filter.Reject)
		}
		return r, nil
	}))
	lax := filter.NewPipeline(filter.Options{})
	var cur atomic.Pointer[filter.Pipeline]
	cur.Store(strict)
	var acquired, released atomic.Int64
	store := &memStore{}
	r, err := router.New(router.Config{Queue: store, Quarantine: store})
	if err != nil {
		t.Fatal(err)
	}
	be, err := smtpd.NewBackend(smtpd.Config{Router: r, Acquire: func() (*filter.Pipeline, func()) {
		acquired.Add(1)
		return cur.Load(), func() { released.Add(1) }
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := smtpd.NewServer(be, smtpd.ServerConfig{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	dial := func() *smtp.Client {
		c, err := smtp.Dial(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	send := func(c *smtp.Client) error {
		if err := c.Mail("a@example.org", nil); err != nil {
			return err
		}
		if err := c.Rcpt("b@example.net", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		w.Write([]byte("Subject: x\r\n\r\na forbidden word\r\n"))
		return w.Close()
	}
	old := dial() // begins on the strict pipeline
	cur.Store(lax)
	fresh := dial()
	if err := send(old); err == nil {
		t.Error("the session begun before the swap accepted what its pipeline rejects")
	}
	if err := send(fresh); err != nil {
		t.Errorf("the session begun after the swap: %v, want accepted", err)
	}
	old.Quit()
	fresh.Quit()
	deadline := time.Now().Add(10 * time.Second)
	for released.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // Logout runs after QUIT on the server's goroutine
	}
	if acquired.Load() != 2 || released.Load() != 2 {
		t.Errorf("acquired %d, released %d; want 2 and 2", acquired.Load(), released.Load())
	}
	if _, err := smtpd.NewBackend(smtpd.Config{Router: r}); err != smtpd.ErrNoPipeline {
		t.Errorf("neither Pipeline nor Acquire: %v, want ErrNoPipeline", err)
	}
}
