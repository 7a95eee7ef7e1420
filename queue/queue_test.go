package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestEnqueueDeliversAndRemoves(t *testing.T) {
	m := newRecMetrics()
	var mu sync.Mutex
	got := map[string]string{}
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		b, err := io.ReadAll(o.Body())
		if err != nil {
			return all(len(o.To), err)
		}
		mu.Lock()
		got[string(o.ID)] = string(b)
		mu.Unlock()
		return make([]error, len(o.To))
	})
	dir := t.TempDir()
	q, err := Open(dir, fastCfg(d, m))
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, q)
	want := map[string]string{}
	for i := range 50 {
		body := testMsg("m" + string(rune('a'+i%26)) + strings.Repeat("x", i))
		id, err := q.Enqueue(bg, testEnv(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		want[string(id)] = body
	}
	eventually(t, "all delivered", func() bool { return q.Len() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("delivered %d, want %d", len(got), len(want))
	}
	for id, b := range want {
		if got[id] != b {
			t.Errorf("message %s delivered as %q, want %q", id, got[id], b)
		}
	}
	if m.get("portcullis_queue_enqueued_total") != 50 || m.get("portcullis_queue_delivered_total") != 50 {
		t.Errorf("metrics: %v", m)
	}
	if m.get("portcullis_queue_fsync_seconds_count") == 0 {
		t.Error("fsync latency not observed")
	}
	es, _ := q.store.Entries(bg)
	if len(es) != 0 {
		t.Errorf("%d entries left in the store after delivery", len(es))
	}
}

func TestAttemptPersistedBeforeDelivery(t *testing.T) {
	var q *Queue
	var seen atomic.Bool
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		es, err := q.store.Entries(ctx)
		if err != nil || len(es) != 1 || !es[0].Inflight || es[0].Attempts != o.Attempts {
			t.Errorf("at delivery the store holds %+v (err %v), want the attempt persisted", es, err)
		}
		seen.Store(true)
		return make([]error, len(o.To))
	})
	var err error
	q, err = Open(t.TempDir(), fastCfg(d, nil))
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, q)
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("p"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery", func() bool { return seen.Load() && q.Len() == 0 })
}

func TestTemporaryThenSuccess(t *testing.T) {
	m := newRecMetrics()
	var calls atomic.Int32
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		if calls.Add(1) <= 2 {
			return all(len(o.To), remote("mx", 451, "4.7.1", "greylisted"))
		}
		return make([]error, len(o.To))
	})
	q := openTest(t, fastCfg(d, m))
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("t"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after retries", func() bool { return q.Len() == 0 })
	if calls.Load() != 3 || m.get("portcullis_queue_retries_total") != 2 || m.get("portcullis_queue_delivered_total") != 1 {
		t.Errorf("calls %d, metrics %v", calls.Load(), m)
	}
}

func TestPartialDeliveryKeepsPending(t *testing.T) {
	var mu sync.Mutex
	var tries [][]string
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		mu.Lock()
		tries = append(tries, o.To)
		n := len(tries)
		mu.Unlock()
		errs := make([]error, len(o.To))
		for i, r := range o.To {
			if r == "slow@example.com" && n == 1 {
				errs[i] = errors.New("mx dial: connection refused")
			}
		}
		return errs
	})
	q := openTest(t, fastCfg(d, nil))
	if _, err := q.Enqueue(bg, testEnv("a@example.net", "slow@example.com"), strings.NewReader(testMsg("p"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery", func() bool { return q.Len() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != 2 || len(tries[1]) != 1 || tries[1][0] != "slow@example.com" {
		t.Errorf("attempts %v: the second must retry only the deferred recipient", tries)
	}
}

func TestPermanentFailureBounces(t *testing.T) {
	m := newRecMetrics()
	var mu sync.Mutex
	var dsn *Outgoing
	var dsnBody string
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		if o.From == "" {
			b, _ := io.ReadAll(o.Body())
			mu.Lock()
			dsn, dsnBody = o, string(b)
			mu.Unlock()
			return make([]error, len(o.To))
		}
		return all(len(o.To), remote("mx.example.net:25", 550, "5.1.1", "no such user"))
	})
	q := openTest(t, fastCfg(d, m))
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("bounce-me"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bounce delivered", func() bool { mu.Lock(); defer mu.Unlock(); return dsn != nil && q.Len() == 0 })
	if len(dsn.To) != 1 || dsn.To[0] != "sender@example.org" {
		t.Errorf("DSN to %v", dsn.To)
	}
	for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; rcpt@example.net",
		"Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Subject: bounce-me", "Remote-MTA: dns; mx.example.net:25"} {
		if !strings.Contains(dsnBody, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsnBody)
		}
	}
	if m.get("portcullis_queue_bounces_total") != 1 {
		t.Errorf("bounces metric %v", m)
	}
}

func TestNullSenderNeverBounced(t *testing.T) {
	m := newRecMetrics()
	var calls atomic.Int32
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		calls.Add(1)
		return all(len(o.To), remote("", 554, "", "rejected"))
	})
	q := openTest(t, fastCfg(d, m))
	env := testEnv()
	env.MailFrom = ""
	if _, err := q.Enqueue(bg, env, strings.NewReader(testMsg("null"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "finished", func() bool { return q.Len() == 0 })
	if calls.Load() != 1 {
		t.Errorf("%d attempts: a bounce was sent for the null sender", calls.Load())
	}
	if m.one("portcullis_queue_bounces_total{dsn,suppressed}") != 1 {
		t.Errorf("suppressed bounce not counted: %v", m)
	}
}

func TestMaxLifetimeBounces(t *testing.T) {
	var mu sync.Mutex
	var dsnBody string
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		if o.From == "" {
			b, _ := io.ReadAll(o.Body())
			mu.Lock()
			dsnBody = string(b)
			mu.Unlock()
			return make([]error, len(o.To))
		}
		return all(len(o.To), errors.New("mx:25 dial: connection refused"))
	})
	cfg := fastCfg(d, nil)
	cfg.MaxLifetime = 300 * time.Millisecond
	q := openTest(t, cfg)
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("old"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "expiry bounce", func() bool { mu.Lock(); defer mu.Unlock(); return dsnBody != "" && q.Len() == 0 })
	if !strings.Contains(dsnBody, "Status: 5.4.7") || !strings.Contains(dsnBody, "connection refused") {
		t.Errorf("expiry DSN:\n%s", dsnBody)
	}
}

func TestHoldPolicyKeepsDeadLetter(t *testing.T) {
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		return all(len(o.To), remote("", 550, "5.7.1", "blocked"))
	})
	cfg := fastCfg(d, nil)
	cfg.BouncePolicy = Hold
	q := openTest(t, cfg)
	id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("dl")))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "held", func() bool { es := q.Entries(); return len(es) == 1 && es[0].State == Held })
	if e := q.Entries()[0]; e.ID != id || !strings.Contains(e.LastError, "blocked") {
		t.Errorf("held entry %+v", e)
	}
	if err := q.Delete(bg, id); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(bg, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if es, _ := q.store.Entries(bg); q.Len() != 0 || len(es) != 0 {
		t.Errorf("deleted entry still there: %d, %+v", q.Len(), es)
	}
}

func TestPanickingDelivererIsHeld(t *testing.T) {
	m := newRecMetrics()
	var calls atomic.Int32
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		calls.Add(1)
		panic("boom")
	})
	dir := t.TempDir()
	q, err := Open(dir, fastCfg(d, m))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("poison"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "held", func() bool { es := q.Entries(); return len(es) == 1 && es[0].State == Held })
	time.Sleep(100 * time.Millisecond) // several retry periods: a held message is not attempted
	if calls.Load() != 3 || m.get("portcullis_queue_panics_total") != 3 || m.get("portcullis_queue_held_total") != 1 {
		t.Errorf("calls %d, metrics %v", calls.Load(), m)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Held survives a restart, and Release puts it back.
	var ok atomic.Bool
	q, err = Open(dir, fastCfg(DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		ok.Store(true)
		return make([]error, len(o.To))
	}), nil))
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, q)
	es := q.Entries()
	if len(es) != 1 || es[0].State != Held {
		t.Fatalf("after restart: %+v", es)
	}
	if err := q.Release(bg, es[0].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "released and delivered", func() bool { return ok.Load() && q.Len() == 0 })
}

func TestProcessDeathDuringDeliveryCountsCrash(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e := Entry{ID: newID(now), Envelope: testEnv(), Created: now, NextAttempt: now}
	if err := s.Put(bg, e, []byte(testMsg("dies"))); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	never := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		calls.Add(1)
		return make([]error, len(o.To))
	})
	for crash := 1; crash <= 3; crash++ {
		// What a process that died mid-delivery leaves behind.
		e.Attempts++
		e.Inflight = true
		if err := s.Update(bg, e); err != nil {
			t.Fatal(err)
		}
		q, err := New(s, Config{StoreOnly: true}) // no deliverer: just recovery
		if err != nil {
			t.Fatal(err)
		}
		es := q.Entries()
		q.Close()
		if len(es) != 1 || es[0].Crashes != crash || es[0].Inflight {
			t.Fatalf("after crash %d: %+v", crash, es)
		}
		e = es[0]
		if want := crash >= 3; (e.State == Held) != want {
			t.Fatalf("after crash %d: state %v", crash, e.State)
		}
	}
	q, err := New(s, Config{Deliverer: never})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	q.Close()
	s.Close()
	if calls.Load() != 0 {
		t.Error("a held poison message was attempted")
	}
}

func TestBackpressure(t *testing.T) {
	m := newRecMetrics()
	cfg := fastCfg(nil, m)
	cfg.MaxDepth = 3
	q := openTest(t, cfg)
	for range 3 {
		if _, err := q.Enqueue(bg, testEnv(), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := q.Enqueue(bg, testEnv(), strings.NewReader("x"))
	var be *BusyError
	if !errors.As(err, &be) || be.Reason != BusyDepth || !errors.Is(err, ErrBusy) {
		t.Fatalf("enqueue over depth: %v", err)
	}
	if r := filter.ErrorReply(err); r.Code != 451 || r.Enhanced != "4.3.2" {
		t.Errorf("reply %+v", r)
	}
	if m.get("portcullis_queue_busy_total") != 1 {
		t.Errorf("busy not counted: %v", m)
	}
}

func TestBackpressureAge(t *testing.T) {
	cfg := fastCfg(nil, nil)
	cfg.MaxAge = 50 * time.Millisecond
	q := openTest(t, cfg)
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_, err := q.Enqueue(bg, testEnv(), strings.NewReader("x"))
	var be *BusyError
	if !errors.As(err, &be) || be.Reason != BusyAge {
		t.Fatalf("enqueue with an old queue: %v", err)
	}
}

func TestBackpressureDisk(t *testing.T) {
	cfg := fastCfg(nil, nil)
	cfg.MinFreeBytes = 1 << 62 // more than any disk has
	q := openTest(t, cfg)
	_, err := q.Enqueue(bg, testEnv(), strings.NewReader("x"))
	var be *BusyError
	if !errors.As(err, &be) || be.Reason != BusyDisk {
		t.Fatalf("enqueue with a full disk: %v", err)
	}
	if r := filter.ErrorReply(err); r.Code != 452 || r.Enhanced != "4.3.1" {
		t.Errorf("reply %+v", r)
	}
}

func TestReplyMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errors.New("fsync: input/output error"), 451},
		{ErrClosed, 451},
		{&filter.LimitError{Limit: filter.LimitMessageBytes, Max: 10}, 552},
		{ErrNoRecipients, 554},
		{&BusyError{Reason: BusyAge}, 451},
		{fmt.Errorf("wrapped: %w", &BusyError{Reason: BusyDisk}), 452},
		{context.DeadlineExceeded, 451},
	} {
		if r := filter.ErrorReply(tc.err); r.Code != tc.code {
			t.Errorf("ErrorReply(%v) = %d, want %d", tc.err, r.Code, tc.code)
		}
	}
	wrapped := fmt.Errorf("%w: address of 2000 bytes", ErrInvalidEnvelope)
	if r := filter.ErrorReply(wrapped); r.Code != 553 || r.Enhanced != "5.1.3" {
		t.Errorf("a wrapped ErrInvalidEnvelope: %v", r)
	}
}

func TestMessageTooLarge(t *testing.T) {
	cfg := fastCfg(nil, nil)
	cfg.MaxMessageBytes = 100
	q := openTest(t, cfg)
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(strings.Repeat("x", 100))); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := q.Enqueue(bg, testEnv(), strings.NewReader(strings.Repeat("x", 101)))
	if !errors.Is(err, filter.ErrLimit) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := q.Enqueue(bg, filter.Envelope{MailFrom: "a@b"}, strings.NewReader("x")); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("no recipients: %v", err)
	}
}

func TestShutdownWaitsForInflight(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		close(started)
		<-release
		finished.Store(true)
		return make([]error, len(o.To))
	})
	dir := t.TempDir()
	q, err := Open(dir, fastCfg(d, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	<-started
	done := make(chan error)
	go func() { done <- q.Shutdown(bg) }()
	select {
	case <-done:
		t.Fatal("Shutdown returned with a delivery in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("delivery did not finish")
	}
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("enqueue after shutdown: %v", err)
	}
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if es, _ := s.Entries(bg); len(es) != 0 {
		t.Errorf("delivered message still stored: %+v", es)
	}
}

func TestShutdownDeadlineCancelsAndRecords(t *testing.T) {
	started := make(chan struct{})
	d := DeliverFunc(func(ctx context.Context, o *Outgoing) []error {
		close(started)
		<-ctx.Done()
		return all(len(o.To), fmt.Errorf("mx DATA: %w", ctx.Err()))
	})
	dir := t.TempDir()
	q, err := Open(dir, fastCfg(d, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	if err := q.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, _ := s.Entries(bg)
	if len(es) != 1 || es[0].Inflight || es[0].Attempts != 1 || !strings.Contains(es[0].LastError, "canceled") {
		t.Errorf("after a cut-short shutdown: %+v", es)
	}
}

// TestClassify: only a remote 5xx bounces; anything else is retried.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err   error
		class Class
	}{
		{remote("mx", 550, "5.1.1", "no such user"), Permanent},
		{fmt.Errorf("wrapped: %w", remote("mx", 554, "", "rejected")), Permanent},
		{remote("mx", 452, "4.2.2", "mailbox full"), Temporary},
		{remote("mx", 250, "", "odd"), Temporary},
		{context.DeadlineExceeded, Temporary},
		{errors.New("something odd"), Temporary},
	} {
		if c := Classify(tc.err); c != tc.class {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, c, tc.class)
		}
	}
}

// TestNoDelivererRefused: a zero Config is an error, not a queue that
// stores mail and silently never delivers it; StoreOnly says so on purpose.
func TestNoDelivererRefused(t *testing.T) {
	if _, err := Open(t.TempDir(), Config{}); !errors.Is(err, ErrNoDeliverer) {
		t.Errorf("Open with a zero Config: %v, want ErrNoDeliverer", err)
	}
	s, err := OpenSpool(t.TempDir(), SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := New(s, Config{MinFreeBytes: 1}); !errors.Is(err, ErrNoDeliverer) {
		t.Errorf("New without a Deliverer: %v, want ErrNoDeliverer", err)
	}
	q, err := New(s, Config{StoreOnly: true, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("kept"))); err != nil || q.Len() != 1 {
		t.Errorf("a StoreOnly queue stores: %v, %d entries", err, q.Len())
	}
}
