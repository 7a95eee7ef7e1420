// Package queuetest is the conformance suite that every queue.Store must
// pass: the local spool runs it, and so does every other backend (NATS
// JetStream). A backend's test calls Run with a function that returns an
// opener for a fresh, empty store location; the suite opens, closes and
// reopens stores there to check that what was acknowledged survives.
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

// Opener opens the store at one location. Opening again after Close must
// see everything that was acknowledged.
type Opener func() (queue.Store, error)

// Run runs the suite. newStore is called once per subtest and returns an
// opener for a fresh location (a temp dir, a new stream name).
func Run(t *testing.T, newStore func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"PutThenReopen", testPutReopen},
		{"UpdatePersists", testUpdate},
		{"RemovePersists", testRemove},
		{"NotFound", testNotFound},
		{"ConcurrentPuts", testConcurrent},
		{"LargeBody", testLarge},
		{"EntriesOldestFirst", testOrder},
		{"Closed", testClosed},
		{"CancelledContext", testCancelled},
		{"EntryIsCopied", testCopied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var ctx = context.Background()

func mustOpen(t *testing.T, open Opener) queue.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func closeStore(t *testing.T, s queue.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

var seq int64
var seqMu sync.Mutex

// Entry returns a distinct test entry with every field set.
func Entry(n int) queue.Entry {
	seqMu.Lock()
	seq++
	s := seq
	seqMu.Unlock()
	created := time.UnixMilli(1_700_000_000_000 + s)
	return queue.Entry{
		ID: queue.ID(fmt.Sprintf("t%06d-%d", s, n)),
		Envelope: filter.Envelope{
			ClientIP: netip.MustParseAddr("192.0.2.7"), Helo: "mx.example.org", MailFrom: "a@example.org",
			RcptTo: []string{"b@example.net", fmt.Sprintf("c%d@example.com", n)}, AuthUser: "u", TLS: true,
		},
		Created:     created,
		NextAttempt: created,
	}
}

// Body returns a distinct test body of about n bytes.
func Body(id queue.ID, n int) []byte {
	b := []byte("Subject: " + string(id) + "\r\n\r\n")
	for len(b) < n {
		b = append(b, "line of text for "+string(id)+"\r\n"...)
	}
	return b[:max(n, len(b))]
}

// CheckEntry compares what a store returned with what was put.
func CheckEntry(t *testing.T, got, want queue.Entry) {
	t.Helper()
	if got.ID != want.ID || got.Size != want.Size || got.State != want.State || got.Attempts != want.Attempts ||
		got.Inflight != want.Inflight || got.Crashes != want.Crashes || got.LastError != want.LastError ||
		!got.Created.Equal(want.Created) || !got.NextAttempt.Equal(want.NextAttempt) ||
		!slices.Equal(got.Done, want.Done) || !envEqual(got.Envelope, want.Envelope) {
		t.Errorf("entry changed in the store:\n got %+v\nwant %+v", got, want)
	}
}

func envEqual(a, b filter.Envelope) bool {
	return a.ClientIP == b.ClientIP && a.Helo == b.Helo && a.MailFrom == b.MailFrom &&
		slices.Equal(a.RcptTo, b.RcptTo) && a.AuthUser == b.AuthUser && a.TLS == b.TLS
}

// ReadBody reads a whole body from the store.
func ReadBody(t *testing.T, s queue.Store, id queue.ID) []byte {
	t.Helper()
	b, err := s.Body(ctx, id)
	if err != nil {
		t.Fatalf("body %s: %v", id, err)
	}
	defer b.Close()
	data, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil {
		t.Fatalf("body %s: %v", id, err)
	}
	return data
}

func put(t *testing.T, s queue.Store, n, size int) (queue.Entry, []byte) {
	t.Helper()
	e := Entry(n)
	body := Body(e.ID, size)
	e.Size = int64(len(body))
	if err := s.Put(ctx, e, body); err != nil {
		t.Fatalf("put: %v", err)
	}
	return e, body
}

func entries(t *testing.T, s queue.Store) map[queue.ID]queue.Entry {
	t.Helper()
	es, err := s.Entries(ctx)
	if err != nil {
		t.Fatalf("entries: %v", err)
	}
	m := make(map[queue.ID]queue.Entry, len(es))
	for _, e := range es {
		if _, dup := m[e.ID]; dup {
			t.Errorf("entry %s listed twice", e.ID)
		}
		m[e.ID] = e
	}
	return m
}

func testPutReopen(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	e, body := put(t, s, 1, 2000)
	closeStore(t, s)
	s = mustOpen(t, open)
	defer closeStore(t, s)
	got := entries(t, s)
	if len(got) != 1 {
		t.Fatalf("after reopen: %d entries, want 1", len(got))
	}
	CheckEntry(t, got[e.ID], e)
	if b := ReadBody(t, s, e.ID); !bytes.Equal(b, body) {
		t.Errorf("body changed: %d bytes, want %d", len(b), len(body))
	}
}

func testUpdate(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	e, body := put(t, s, 1, 500)
	e.Attempts, e.Inflight, e.Crashes = 2, true, 1
	e.State = queue.Held
	e.Done = []string{"b@example.net"}
	e.NextAttempt = e.Created.Add(time.Hour)
	e.LastError = "451 4.7.1 try later"
	if err := s.Update(ctx, e); err != nil {
		t.Fatalf("update: %v", err)
	}
	CheckEntry(t, entries(t, s)[e.ID], e)
	closeStore(t, s)
	s = mustOpen(t, open)
	defer closeStore(t, s)
	CheckEntry(t, entries(t, s)[e.ID], e)
	if b := ReadBody(t, s, e.ID); !bytes.Equal(b, body) {
		t.Error("update changed the body")
	}
}

func testRemove(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	e1, _ := put(t, s, 1, 100)
	e2, _ := put(t, s, 2, 100)
	if err := s.Remove(ctx, e1.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	closeStore(t, s)
	s = mustOpen(t, open)
	defer closeStore(t, s)
	got := entries(t, s)
	if _, ok := got[e1.ID]; ok || len(got) != 1 {
		t.Fatalf("after remove and reopen: %v", got)
	}
	CheckEntry(t, got[e2.ID], e2)
	if _, err := s.Body(ctx, e1.ID); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("body of removed entry: %v, want ErrNotFound", err)
	}
}

func testNotFound(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	defer closeStore(t, s)
	e := Entry(1)
	if err := s.Update(ctx, e); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("update of unknown entry: %v, want ErrNotFound", err)
	}
	if err := s.Remove(ctx, e.ID); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("remove of unknown entry: %v, want ErrNotFound", err)
	}
	if _, err := s.Body(ctx, e.ID); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("body of unknown entry: %v, want ErrNotFound", err)
	}
}

func testConcurrent(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	const workers, each = 16, 25
	var mu sync.Mutex
	want := map[queue.ID][]byte{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e := Entry(w*1000 + i)
				body := Body(e.ID, 300+i*37)
				e.Size = int64(len(body))
				if err := s.Put(ctx, e, body); err != nil {
					t.Errorf("put: %v", err)
					return
				}
				mu.Lock()
				want[e.ID] = body
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	closeStore(t, s)
	s = mustOpen(t, open)
	defer closeStore(t, s)
	got := entries(t, s)
	if len(got) != workers*each {
		t.Fatalf("%d entries after reopen, want %d", len(got), workers*each)
	}
	for id, body := range want {
		if b := ReadBody(t, s, id); !bytes.Equal(b, body) {
			t.Fatalf("body of %s changed", id)
		}
	}
}

func testLarge(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	e, body := put(t, s, 1, 5<<20)
	closeStore(t, s)
	s = mustOpen(t, open)
	defer closeStore(t, s)
	if b := ReadBody(t, s, e.ID); !bytes.Equal(b, body) {
		t.Errorf("large body changed: %d bytes, want %d", len(b), len(body))
	}
}

func testOrder(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	defer closeStore(t, s)
	var ids []queue.ID
	for i := range 5 {
		e, _ := put(t, s, i, 50)
		ids = append(ids, e.ID)
	}
	es, err := s.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []queue.ID
	for _, e := range es {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("entries %v, want oldest first %v", got, ids)
	}
}

func testClosed(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	e, _ := put(t, s, 1, 50)
	closeStore(t, s)
	if err := s.Put(ctx, Entry(2), []byte("x")); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("put after close: %v, want ErrClosed", err)
	}
	if err := s.Update(ctx, e); err == nil {
		t.Error("update after close succeeded")
	}
	if _, err := s.Entries(ctx); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("entries after close: %v, want ErrClosed", err)
	}
}

func testCancelled(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	defer closeStore(t, s)
	c, cancel := context.WithCancel(ctx)
	cancel()
	e := Entry(1)
	if err := s.Put(c, e, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a cancelled context: %v, want context.Canceled", err)
	}
}

func testCopied(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	defer closeStore(t, s)
	e, _ := put(t, s, 1, 50)
	want := e
	want.Envelope.RcptTo = slices.Clone(e.Envelope.RcptTo)
	e.Envelope.RcptTo[0] = "changed@example.org"
	got := entries(t, s)[want.ID]
	CheckEntry(t, got, want)
	got.Envelope.RcptTo[0] = "changed-again@example.org"
	CheckEntry(t, entries(t, s)[want.ID], want)
}

// Metrics is a filter.Metrics that records values by name (labels are
// summed), for assertions; observations count under name+"_count".
type Metrics struct {
	mu sync.Mutex
	m  map[string]float64
}

// NewMetrics returns an empty recorder.
func NewMetrics() *Metrics { return &Metrics{m: map[string]float64{}} }

// Add implements filter.Metrics.
func (r *Metrics) Add(name string, d float64, _ ...string) {
	r.mu.Lock()
	r.m[name] += d
	r.mu.Unlock()
}

// Set implements filter.Metrics.
func (r *Metrics) Set(name string, v float64, _ ...string) {
	r.mu.Lock()
	r.m[name] = v
	r.mu.Unlock()
}

// Observe implements filter.Metrics.
func (r *Metrics) Observe(name string, _ float64, _ ...string) { r.Add(name+"_count", 1) }

// Get returns a recorded value.
func (r *Metrics) Get(name string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[name]
}

func (r *Metrics) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.m)
}
