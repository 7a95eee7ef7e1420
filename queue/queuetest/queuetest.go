// Package queuetest is the conformance suite that every queue.Store must
// pass: the local spool runs it, and so does every other backend (NATS
// JetStream). A backend's test calls Run with a function that returns an
// opener for a fresh, empty store location; the suite opens, closes and
// reopens stores there to check that what was acknowledged survives.
package queuetest

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/storetest"
	"github.com/portcullis-mail/portcullis/queue"
)

// Opener opens the store at one location. Opening again after Close must
// see everything that was acknowledged.
type Opener func() (queue.Store, error)

// Run runs the suite (internal/storetest, the one shared by every
// message store, over queue.Entry records). newStore is called once per
// subtest and returns an opener for a fresh location (a temp dir, a new
// stream name).
func Run(t *testing.T, newStore func(t *testing.T) Opener) {
	storetest.Run(t, kind, func(t *testing.T) func() (storetest.Store[queue.Entry, queue.ID], error) {
		open := newStore(t)
		return func() (storetest.Store[queue.Entry, queue.ID], error) {
			s, err := open()
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}

var kind = storetest.Kind[queue.Entry, queue.ID]{
	New: func(n, size int) (queue.Entry, []byte) {
		e := Entry(n)
		body := Body(e.ID, size)
		e.Size = int64(len(body))
		return e, body
	},
	ID: func(e queue.Entry) queue.ID { return e.ID },
	List: func(ctx context.Context, s storetest.Store[queue.Entry, queue.ID]) ([]queue.Entry, error) {
		return s.(queue.Store).Entries(ctx)
	},
	Change: func(e queue.Entry) queue.Entry {
		e.Attempts, e.Inflight, e.Crashes = 2, true, 1
		e.State = queue.Held
		e.Done = []string{"b@example.net"}
		e.NextAttempt = e.Created.Add(time.Hour)
		e.LastError = "451 4.7.1 try later"
		return e
	},
	Scribble: func(e *queue.Entry) { e.Envelope.RcptTo[0] = "changed@example.org" },
	Clone: func(e queue.Entry) queue.Entry {
		e.Envelope.RcptTo = slices.Clone(e.Envelope.RcptTo)
		e.Done = slices.Clone(e.Done)
		return e
	},
	Check:       CheckEntry,
	ErrNotFound: queue.ErrNotFound,
	ErrClosed:   queue.ErrClosed,
	LargeBytes:  5 << 20,
}

var ctx = context.Background()

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
