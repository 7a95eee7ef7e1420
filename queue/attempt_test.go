package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// refusingStore fails Update on demand: a store that cannot record.
type refusingStore struct {
	Store
	mu     sync.Mutex
	refuse error
}

func (s *refusingStore) Update(ctx context.Context, e Entry) error {
	s.mu.Lock()
	err := s.refuse
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Store.Update(ctx, e)
}

// logLines decodes JSON log lines with the given message.
func logLines(t *testing.T, buf *bytes.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestAttempter: one attempt per call, its outcome recorded in the store
// and returned, one result line logged per attempt.
func TestAttempter(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs := &refusingStore{Store: s}
	var answer error
	calls := 0
	var logs bytes.Buffer
	a, err := NewAttempter(rs, Config{
		Deliverer: DeliverFunc(func(_ context.Context, m *Outgoing) []error {
			calls++
			if answer == errPanicNow {
				panic("boom")
			}
			return all(len(m.To), answer)
		}),
		RetryBase: time.Minute, RetryMax: time.Hour, MaxCrashes: 2,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEntry(testEnv("a@example.net", "b@example.net"), []byte(testMsg("x")), time.Now())
	if err := s.Put(bg, e, []byte(testMsg("x"))); err != nil {
		t.Fatal(err)
	}

	// A 4xx: recorded, due again after the backoff, not delivered.
	answer = remote("mx.example.net:25", 451, "4.7.1", "greylisted")
	out := a.Attempt(bg, e)
	if out.Gone || out.Err != nil || out.Entry.Attempts != 1 || out.Entry.Inflight || time.Until(out.Entry.NextAttempt) < 29*time.Second {
		t.Fatalf("deferred: %+v", out)
	}
	stored, _ := s.Entries(bg)
	if len(stored) != 1 || stored[0].Attempts != 1 || stored[0].Inflight || stored[0].LastError == "" {
		t.Fatalf("deferred attempt not recorded: %+v", stored)
	}
	lines := logLines(t, &logs, "queue: delivery attempt")
	if len(lines) != 1 || lines[0]["id"] != string(e.ID) || lines[0]["attempt"] != 1.0 || lines[0]["rcpts"] != 2.0 ||
		lines[0]["result"] != "deferred" || lines[0]["host"] != "mx.example.net:25" || lines[0]["reply"] != "451 4.7.1 greylisted" ||
		lines[0]["duration"] == nil {
		t.Errorf("result line %v", lines)
	}

	// The store refuses to record the attempt: nothing is delivered.
	rs.refuse = errors.New("EIO")
	before := calls
	out = a.Attempt(bg, out.Entry)
	if out.Err == nil || calls != before || out.Entry.Attempts != 1 {
		t.Fatalf("unrecordable attempt: %+v, %d deliveries", out, calls-before)
	}
	rs.refuse = nil

	// An entry found in flight (its process died) counts a crash; a
	// panic counts another and, at MaxCrashes 2, holds it.
	crashed := out.Entry
	crashed.Inflight = true
	answer = errPanicNow
	out = a.Attempt(bg, crashed)
	if out.Gone || out.Err != nil || out.Entry.Crashes != 2 || out.Entry.State != Held {
		t.Fatalf("crash, then panic: %+v", out)
	}
	stored, _ = s.Entries(bg)
	if len(stored) != 1 || stored[0].State != Held {
		t.Fatalf("poison not held in the store: %+v", stored)
	}

	// Delivered: removed.
	released := out.Entry
	released.State, released.Crashes = Queued, 0
	answer = nil
	out = a.Attempt(bg, released)
	if !out.Gone || out.Err != nil {
		t.Fatalf("delivered: %+v", out)
	}
	if stored, _ = s.Entries(bg); len(stored) != 0 {
		t.Fatalf("delivered entry still stored: %+v", stored)
	}
	lines = logLines(t, &logs, "queue: delivery attempt")
	if len(lines) != 3 || lines[1]["result"] != "crashed" || lines[2]["result"] != "delivered" {
		t.Errorf("want one line per attempt that ran (3): %v", lines)
	}
	if _, err := NewAttempter(s, Config{}, nil); !errors.Is(err, ErrNoDeliverer) {
		t.Errorf("an Attempter without a Deliverer: %v", err)
	}
}

var errPanicNow = errors.New("panic now")

// TestLogStoryByID: one message's enqueue, attempt and bounce lines carry
// its ID, so its story can be read from the log.
func TestLogStoryByID(t *testing.T) {
	var logs bytes.Buffer
	cfg := fastCfg(DeliverFunc(func(_ context.Context, m *Outgoing) []error {
		return all(len(m.To), remote("mx.example.net:25", 550, "5.1.1", "no such user"))
	}), nil)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	q, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := q.Enqueue(bg, testEnv(), bytes.NewReader([]byte(testMsg("story"))))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the message and its bounce done", func() bool { return q.Len() == 0 })
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"queue: enqueued", "queue: delivery attempt", "queue: delivery failed for good", "queue: bounce queued"} {
		found := false
		for _, l := range logLines(t, &logs, msg) {
			found = found || l["id"] == string(id)
		}
		if !found {
			t.Errorf("no %q line with id %s in:\n%s", msg, id, logs.String())
		}
	}
	if a := logLines(t, &logs, "queue: delivery attempt"); len(a) == 0 || a[0]["result"] != "failed" || a[0]["reply"] != "550 5.1.1 no such user" {
		t.Errorf("attempt lines %v", a)
	}
}

// TestDeferredLogLines: a deferred attempt of one recipient is one line,
// the result line, naming the recipient and the error; with two, each
// deferred recipient also gets a line of its own.
func TestDeferredLogLines(t *testing.T) {
	for _, rcpts := range [][]string{{"one@example.net"}, {"one@example.net", "two@example.net"}} {
		s, err := OpenSpool(t.TempDir(), SpoolConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		a, err := NewAttempter(s, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			Deliverer: DeliverFunc(func(_ context.Context, m *Outgoing) []error {
				return all(len(m.To), errors.New("dial tcp 192.0.2.1:25: connection refused"))
			})}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		e := Entry{ID: newID(now), Envelope: testEnv(rcpts...), Created: now, NextAttempt: now}
		if err := s.Put(bg, e, []byte(testMsg("deferred"))); err != nil {
			t.Fatal(err)
		}
		if out := a.Attempt(bg, e); out.Err != nil || out.Entry.Attempts != 1 {
			t.Fatalf("attempt: %+v", out)
		}
		s.Close()
		res := logLines(t, &logs, "queue: delivery attempt")
		per := logLines(t, &logs, "queue: delivery deferred")
		if len(res) != 1 || res[0]["result"] != "deferred" || res[0]["err"] != "dial tcp 192.0.2.1:25: connection refused" {
			t.Fatalf("%d recipients: result lines %v", len(rcpts), res)
		}
		if len(rcpts) == 1 && (len(per) != 0 || res[0]["rcpt"] != rcpts[0]) {
			t.Errorf("one recipient: result %v, per-recipient lines %v", res[0], per)
		}
		if len(rcpts) == 2 && (len(per) != 2 || res[0]["rcpt"] != nil || per[1]["rcpt"] != rcpts[1]) {
			t.Errorf("two recipients: result %v, per-recipient lines %v", res[0], per)
		}
	}
}
