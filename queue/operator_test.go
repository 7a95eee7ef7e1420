package queue

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// opDeliverer fails every recipient temporarily until ok is set, except
// mail to the sender (bounces), which it records and delivers. While
// block is set, an attempt waits for it to close.
type opDeliverer struct {
	mu      sync.Mutex
	ok      bool
	calls   int
	bounces []string
	block   chan struct{}
	started chan struct{}
}

func (d *opDeliverer) Deliver(ctx context.Context, m *Outgoing) []error {
	d.mu.Lock()
	d.calls++
	ok, block, started := d.ok, d.block, d.started
	d.mu.Unlock()
	if block != nil {
		close(started)
		<-block
	}
	b, _ := io.ReadAll(m.Body())
	out := make([]error, len(m.To))
	for i, r := range m.To {
		switch {
		case r == "sender@example.org":
			d.mu.Lock()
			d.bounces = append(d.bounces, string(b))
			d.mu.Unlock()
		case !ok:
			out[i] = remote("mx.test", 451, "4.3.0", "try later")
		}
	}
	return out
}

func (d *opDeliverer) get() (calls int, bounces []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls, append([]string(nil), d.bounces...)
}

func TestRetryMakesDueNow(t *testing.T) {
	d := &opDeliverer{}
	cfg := fastCfg(d, nil)
	cfg.RetryBase, cfg.RetryMax = time.Hour, time.Hour // only Retry brings it back
	q := openTest(t, cfg)
	id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("retry")))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "first attempt", func() bool { e, _ := q.Entry(id); return e.Attempts == 1 && !e.Inflight })
	e, _ := q.Entry(id)
	if time.Until(e.NextAttempt) < 10*time.Minute {
		t.Fatalf("next attempt %v: the backoff is not an hour", time.Until(e.NextAttempt))
	}
	d.mu.Lock()
	d.ok = true
	d.mu.Unlock()
	if err := q.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after retry", func() bool { _, err := q.Entry(id); return errors.Is(err, ErrNotFound) })
	if calls, _ := d.get(); calls != 2 {
		t.Errorf("%d attempts, want 2", calls)
	}
}

func TestRetryReleasesHeld(t *testing.T) {
	d := &opDeliverer{}
	cfg := fastCfg(d, nil)
	cfg.BouncePolicy = Hold
	cfg.MaxLifetime = time.Nanosecond // the first temporary failure is final: a dead letter
	q := openTest(t, cfg)
	id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("held")))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "held", func() bool { e, _ := q.Entry(id); return e.State == Held })
	d.mu.Lock()
	d.ok = true
	d.mu.Unlock()
	if err := q.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after retry", func() bool { _, err := q.Entry(id); return errors.Is(err, ErrNotFound) })
}

func TestBounceNow(t *testing.T) {
	d := &opDeliverer{}
	m := newRecMetrics()
	cfg := fastCfg(d, m)
	cfg.RetryBase, cfg.RetryMax = time.Hour, time.Hour
	q := openTest(t, cfg)
	id, err := q.Enqueue(bg, testEnv("a@example.net", "b@example.net"), strings.NewReader(testMsg("bounce me")))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "first attempt", func() bool { e, _ := q.Entry(id); return e.Attempts == 1 && !e.Inflight })
	if err := q.Bounce(bg, id); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Entry(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("entry after bounce: %v, want ErrNotFound", err)
	}
	eventually(t, "the DSN delivered", func() bool { _, b := d.get(); return len(b) == 1 })
	_, b := d.get()
	for _, want := range []string{"a@example.net", "b@example.net", "bounced by the operator", "Subject: bounce me", "Status: 5.0.0"} {
		if !strings.Contains(b[0], want) {
			t.Errorf("DSN lacks %q:\n%s", want, b[0])
		}
	}
	if got := m.one("portcullis_queue_bounces_total{dsn,sent}"); got != 2 {
		t.Errorf("bounces_total{dsn=sent} = %v, want 2", got)
	}
	eventually(t, "empty queue", func() bool { return q.Len() == 0 })
}

func TestBounceNullSenderAndStoreOnly(t *testing.T) {
	m := newRecMetrics()
	q := openTest(t, fastCfg(nil, m)) // store-only: nothing is ever attempted
	env := testEnv()
	env.MailFrom = ""
	null, err := q.Enqueue(bg, env, strings.NewReader(testMsg("null")))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("kept")))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Bounce(bg, null); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 1 || m.one("portcullis_queue_bounces_total{dsn,suppressed}") != 1 {
		t.Fatalf("after bouncing a null sender's mail: %d entries, metrics %v", q.Len(), m)
	}
	if err := q.Bounce(bg, kept); err != nil {
		t.Fatal(err)
	}
	es := q.Entries()
	if len(es) != 1 || es[0].ID == kept || len(es[0].Envelope.RcptTo) != 1 || es[0].Envelope.RcptTo[0] != "sender@example.org" || es[0].Envelope.MailFrom != "" {
		t.Fatalf("a store-only queue's bounce: want one DSN from <> to the sender, got %+v", es)
	}
}

func TestOperatorRefusals(t *testing.T) {
	d := &opDeliverer{block: make(chan struct{}), started: make(chan struct{})}
	q := openTest(t, fastCfg(d, nil))
	for name, fn := range map[string]func(ID) error{
		"retry":  func(id ID) error { return q.Retry(bg, id) },
		"bounce": func(id ID) error { return q.Bounce(bg, id) },
		"entry":  func(id ID) error { _, err := q.Entry(id); return err },
	} {
		if err := fn("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of an unknown ID: %v, want ErrNotFound", name, err)
		}
	}
	id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("busy")))
	if err != nil {
		t.Fatal(err)
	}
	<-d.started
	if err := q.Retry(bg, id); !errors.Is(err, ErrInFlight) {
		t.Errorf("retry during an attempt: %v, want ErrInFlight", err)
	}
	if err := q.Bounce(bg, id); !errors.Is(err, ErrInFlight) {
		t.Errorf("bounce during an attempt: %v, want ErrInFlight", err)
	}
	d.mu.Lock()
	block := d.block
	d.block, d.ok = nil, true
	d.mu.Unlock()
	close(block)
	eventually(t, "delivery after the attempt", func() bool { return q.Len() == 0 })
}
