// Package storetest is the one generic conformance suite behind every
// store of messages: queue.Store (queue/queuetest) and quarantine.Store
// (quarantine/quarantinetest) keep records of different types, but the
// contract of Put, Update, Remove, Body, listing and Close is the same,
// and so are its tests: what was acknowledged survives a reopen, an
// update never changes the body, a removed record is gone, unknown IDs
// are ErrNotFound, concurrent puts all land, a large body is kept whole,
// the listing is ordered, a closed store refuses, a cancelled context is
// honoured, and a store never shares memory with its caller.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/portcullis-mail/portcullis/queue"
)

// Store is the part of a message store the suite drives: records of type
// R named by IDs of type K, each with a body.
type Store[R any, K ~string] interface {
	Put(ctx context.Context, r R, body []byte) error
	Update(ctx context.Context, r R) error
	Remove(ctx context.Context, id K) error
	Body(ctx context.Context, id K) (queue.Body, error)
	Close() error
}

// Kind describes a record type to the suite.
type Kind[R any, K ~string] struct {
	// New returns a distinct record with every field set and its body of
	// about size bytes (the record's size matches the body).
	New func(n, size int) (R, []byte)
	// ID names a record.
	ID func(R) K
	// List lists a store's records in the store's order (Entries, All).
	List func(ctx context.Context, s Store[R, K]) ([]R, error)
	// Change returns r with every field an Update may change changed.
	Change func(r R) R
	// Scribble changes the slices r shares in place: a store that keeps or
	// returns shared memory shows it.
	Scribble func(r *R)
	// Clone deep-copies a record.
	Clone func(r R) R
	// Check fails t when got differs from want.
	Check func(t *testing.T, got, want R)
	// ErrNotFound and ErrClosed are the errors the store's contract names.
	ErrNotFound, ErrClosed error
	// LargeBytes is the size of the large-body test; 0 means 3 MiB.
	LargeBytes int
}

// Run runs the suite. newStore is called once per subtest and returns an
// opener for a fresh location; opening again after Close must see
// everything that was acknowledged.
func Run[R any, K ~string](t *testing.T, k Kind[R, K], newStore func(t *testing.T) func() (Store[R, K], error)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h harness[R, K])
	}{
		{"PutThenReopen", testPutReopen[R, K]},
		{"UpdatePersists", testUpdate[R, K]},
		{"RemovePersists", testRemove[R, K]},
		{"NotFound", testNotFound[R, K]},
		{"ConcurrentPuts", testConcurrent[R, K]},
		{"LargeBody", testLarge[R, K]},
		{"ListInOrder", testOrder[R, K]},
		{"Closed", testClosed[R, K]},
		{"CancelledContext", testCancelled[R, K]},
		{"RecordIsCopied", testCopied[R, K]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, harness[R, K]{k, newStore(t)}) })
	}
}

var ctx = context.Background()

type harness[R any, K ~string] struct {
	Kind[R, K]
	open func() (Store[R, K], error)
}

func (h harness[R, K]) mustOpen(t *testing.T) Store[R, K] {
	t.Helper()
	s, err := h.open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func closeStore[R any, K ~string](t *testing.T, s Store[R, K]) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func (h harness[R, K]) put(t *testing.T, s Store[R, K], n, size int) (R, []byte) {
	t.Helper()
	r, body := h.New(n, size)
	if err := s.Put(ctx, r, body); err != nil {
		t.Fatalf("put: %v", err)
	}
	return r, body
}

// all lists a store by ID, failing on duplicates.
func (h harness[R, K]) all(t *testing.T, s Store[R, K]) map[K]R {
	t.Helper()
	rs, err := h.List(ctx, s)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	m := make(map[K]R, len(rs))
	for _, r := range rs {
		if _, dup := m[h.ID(r)]; dup {
			t.Errorf("%s listed twice", h.ID(r))
		}
		m[h.ID(r)] = r
	}
	return m
}

// ReadBody reads a whole body from a store.
func ReadBody[R any, K ~string](t *testing.T, s Store[R, K], id K) []byte {
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

func testPutReopen[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	r1, body1 := h.put(t, s, 1, 3000)
	r2, body2 := h.put(t, s, 2, 10)
	closeStore(t, s)
	s = h.mustOpen(t)
	defer closeStore(t, s)
	got := h.all(t, s)
	if len(got) != 2 {
		t.Fatalf("after reopen: %d records, want 2", len(got))
	}
	h.Check(t, got[h.ID(r1)], r1)
	h.Check(t, got[h.ID(r2)], r2)
	if !bytes.Equal(ReadBody(t, s, h.ID(r1)), body1) || !bytes.Equal(ReadBody(t, s, h.ID(r2)), body2) {
		t.Error("a body changed in the store")
	}
}

func testUpdate[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	r, body := h.put(t, s, 1, 500)
	r = h.Change(r)
	if err := s.Update(ctx, r); err != nil {
		t.Fatalf("update: %v", err)
	}
	h.Check(t, h.all(t, s)[h.ID(r)], r)
	closeStore(t, s)
	s = h.mustOpen(t)
	defer closeStore(t, s)
	h.Check(t, h.all(t, s)[h.ID(r)], r)
	if !bytes.Equal(ReadBody(t, s, h.ID(r)), body) {
		t.Error("update changed the body")
	}
}

func testRemove[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	r1, _ := h.put(t, s, 1, 100)
	r2, _ := h.put(t, s, 2, 100)
	if err := s.Remove(ctx, h.ID(r1)); err != nil {
		t.Fatalf("remove: %v", err)
	}
	closeStore(t, s)
	s = h.mustOpen(t)
	defer closeStore(t, s)
	got := h.all(t, s)
	if _, ok := got[h.ID(r1)]; ok || len(got) != 1 {
		t.Fatalf("after remove and reopen: %d records, the removed one listed: %v", len(got), ok)
	}
	h.Check(t, got[h.ID(r2)], r2)
	if _, err := s.Body(ctx, h.ID(r1)); !errors.Is(err, h.ErrNotFound) {
		t.Errorf("body of a removed record: %v, want ErrNotFound", err)
	}
}

func testNotFound[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	defer closeStore(t, s)
	r, _ := h.New(1, 10)
	if err := s.Update(ctx, r); !errors.Is(err, h.ErrNotFound) {
		t.Errorf("update of unknown: %v, want ErrNotFound", err)
	}
	if err := s.Remove(ctx, h.ID(r)); !errors.Is(err, h.ErrNotFound) {
		t.Errorf("remove of unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.Body(ctx, h.ID(r)); !errors.Is(err, h.ErrNotFound) {
		t.Errorf("body of unknown: %v, want ErrNotFound", err)
	}
}

func testConcurrent[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	const workers, each = 8, 15
	var mu sync.Mutex
	want := map[K][]byte{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r, body := h.New(w*1000+i, 300+i*37)
				if err := s.Put(ctx, r, body); err != nil {
					t.Errorf("put: %v", err)
					return
				}
				mu.Lock()
				want[h.ID(r)] = body
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	closeStore(t, s)
	s = h.mustOpen(t)
	defer closeStore(t, s)
	if got := h.all(t, s); len(got) != workers*each {
		t.Fatalf("%d records after reopen, want %d", len(got), workers*each)
	}
	for id, body := range want {
		if !bytes.Equal(ReadBody(t, s, id), body) {
			t.Fatalf("body of %s changed", id)
		}
	}
}

func testLarge[R any, K ~string](t *testing.T, h harness[R, K]) {
	size := h.LargeBytes
	if size == 0 {
		size = 3 << 20
	}
	s := h.mustOpen(t)
	r, body := h.put(t, s, 1, size)
	closeStore(t, s)
	s = h.mustOpen(t)
	defer closeStore(t, s)
	if b := ReadBody(t, s, h.ID(r)); !bytes.Equal(b, body) {
		t.Errorf("large body changed: %d bytes, want %d", len(b), len(body))
	}
}

// testOrder: records made in order list in that order (New makes them
// oldest first, with increasing IDs).
func testOrder[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	defer closeStore(t, s)
	var ids []K
	for i := range 5 {
		r, _ := h.put(t, s, i, 50)
		ids = append(ids, h.ID(r))
	}
	rs, err := h.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var got []K
	for _, r := range rs {
		got = append(got, h.ID(r))
	}
	if !slices.Equal(got, ids) {
		t.Errorf("listed %v, want %v", got, ids)
	}
}

func testClosed[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	r, _ := h.put(t, s, 1, 50)
	closeStore(t, s)
	r2, body2 := h.New(2, 50)
	if err := s.Put(ctx, r2, body2); !errors.Is(err, h.ErrClosed) {
		t.Errorf("put after close: %v, want ErrClosed", err)
	}
	if err := s.Update(ctx, r); err == nil {
		t.Error("update after close succeeded")
	}
	if _, err := h.List(ctx, s); !errors.Is(err, h.ErrClosed) {
		t.Errorf("list after close: %v, want ErrClosed", err)
	}
}

func testCancelled[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	defer closeStore(t, s)
	c, cancel := context.WithCancel(ctx)
	cancel()
	r, body := h.New(1, 10)
	if err := s.Put(c, r, body); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a cancelled context: %v, want context.Canceled", err)
	}
}

func testCopied[R any, K ~string](t *testing.T, h harness[R, K]) {
	s := h.mustOpen(t)
	defer closeStore(t, s)
	r, body := h.New(1, 50)
	want := h.Clone(r)
	if err := s.Put(ctx, r, body); err != nil {
		t.Fatal(err)
	}
	h.Scribble(&r)
	got := h.all(t, s)[h.ID(want)]
	h.Check(t, got, want)
	h.Scribble(&got)
	h.Check(t, h.all(t, s)[h.ID(want)], want)
}
