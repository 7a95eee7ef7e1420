package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/diskfs"
)

// syncCounter wraps a file system and counts the fsyncs of segment files,
// each also sent on synced (when set) so a test can wait for one.
type syncCounter struct {
	fileSystem
	n      atomic.Int64
	synced chan struct{}
}

func (c *syncCounter) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := c.fileSystem.OpenFile(name, flag, perm)
	if err != nil || !strings.HasPrefix(filepath.Base(name), "seg-") {
		return f, err
	}
	return &countedFile{File: f, c: c}, nil
}

type countedFile struct {
	diskfs.File
	c *syncCounter
}

func (f *countedFile) Sync() error {
	err := f.File.Sync()
	f.c.n.Add(1)
	if f.c.synced != nil {
		f.c.synced <- struct{}{}
	}
	return err
}

func openCounted(t *testing.T, dir string, inner fileSystem, delay time.Duration, m *recMetrics) (*Spool, *syncCounter) {
	t.Helper()
	c := &syncCounter{fileSystem: inner}
	if inner == nil {
		c.fileSystem = osFS{}
	}
	cfg := SpoolConfig{fs: c, syncDelay: delay}
	if m != nil {
		cfg.Metrics = m
	}
	s, err := OpenSpool(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestUpdateWrittenIsOnDiskBeforeItsFsync: UpdateWritten returns once the
// record is in the file (what a process death keeps), without an fsync;
// the next batch that needs one, and Close, fsync it.
func TestUpdateWrittenIsOnDiskBeforeItsFsync(t *testing.T) {
	dir := t.TempDir()
	s, c := openCounted(t, dir, nil, time.Hour, nil)
	ids, _ := putN(t, s, 1, "w")
	if got := c.n.Load(); got != 1 {
		t.Fatalf("fsyncs after a put: %d, want 1", got)
	}
	es, _ := s.Entries(bg)
	e := es[0]
	e.Attempts, e.Inflight = 1, true
	if err := s.UpdateWritten(bg, e); err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got != 1 {
		t.Fatalf("fsyncs after UpdateWritten: %d, want still 1", got)
	}
	segs := segments(t, dir)
	recs := recordsOf(t, segs[len(segs)-1])
	last := recs[len(recs)-1]
	if last.kind != kindUpdate || last.entry.ID != ids[0] || !last.entry.Inflight {
		t.Fatalf("the written update is not in the segment: last record %c %+v", last.kind, last.entry)
	}
	if got, _ := s.Entries(bg); !got[0].Inflight {
		t.Error("the index does not show the written update")
	}
	putN(t, s, 1, "carry")
	if got := c.n.Load(); got != 2 {
		t.Fatalf("fsyncs after the next put: %d, want 2", got)
	}
	e.Attempts = 2
	if err := s.UpdateWritten(bg, e); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got != 3 {
		t.Fatalf("fsyncs after Close with a written update: %d, want 3", got)
	}
	got := checkPresent(t, dir, ids)
	if got[ids[0]].Attempts != 2 {
		t.Errorf("reopened: attempts %d, want 2", got[ids[0]].Attempts)
	}
}

// TestUpdateWrittenFsyncedWhenQuiet: with nothing else to write, the
// spool fsyncs a written update after its delay; a failing fsync then is
// counted, logged and abandons the segment, and the next put still works.
func TestUpdateWrittenFsyncedWhenQuiet(t *testing.T) {
	dir := t.TempDir()
	fault := &diskfs.Fault{}
	m := newRecMetrics()
	s, c := openCounted(t, dir, fault, time.Millisecond, m)
	defer s.Close()
	ids, _ := putN(t, s, 1, "q")
	c.synced = make(chan struct{}, 16)
	es, _ := s.Entries(bg)
	e := es[0]
	e.Attempts = 1
	if err := s.UpdateWritten(bg, e); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.synced:
	case <-time.After(30 * time.Second):
		t.Fatal("a written update was never fsynced")
	}
	before := segments(t, dir)
	fault.FailSyncs(syscall.EIO)
	e.Attempts = 2
	if err := s.UpdateWritten(bg, e); err != nil {
		t.Fatal(err) // acknowledged once written: the fsync fails later
	}
	select {
	case <-c.synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the failing fsync was never tried")
	}
	fault.FailSyncs(nil)
	after, failed := putN(t, s, 1, "after")
	if failed != 0 {
		t.Fatal("a put failed after the fsync fault cleared")
	}
	if m.get("portcullis_queue_write_errors_total") != 1 {
		t.Errorf("write errors %v, want the failed quiet fsync counted", m.get("portcullis_queue_write_errors_total"))
	}
	if segs := segments(t, dir); len(segs) != len(before)+1 {
		t.Errorf("segments %v after %v: the failed segment was not abandoned", segs, before)
	}
	s.Close()
	checkPresent(t, dir, append(ids, after...))
}

// TestAttemptBookkeepingNotFsynced: on the spool, a deferred attempt costs
// no fsync of its own (the mark and the deferral are written); a delivery
// (removal) and a hold are fsynced before the attempt returns.
func TestAttemptBookkeepingNotFsynced(t *testing.T) {
	s, c := openCounted(t, t.TempDir(), nil, time.Hour, nil)
	defer s.Close()
	var answer atomic.Value
	answer.Store(errors.New("connection refused"))
	a, err := NewAttempter(s, Config{Deliverer: DeliverFunc(func(_ context.Context, m *Outgoing) []error {
		if err, _ := answer.Load().(error); err != nil && err.Error() != "" {
			return all(len(m.To), err)
		}
		return make([]error, len(m.To))
	}), MaxCrashes: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, 1, "a")
	es, _ := s.Entries(bg)
	n0 := c.n.Load()
	out := a.Attempt(bg, es[0])
	if out.Err != nil || out.Gone || out.Entry.Attempts != 1 || out.Entry.Inflight {
		t.Fatalf("deferred attempt: %+v", out)
	}
	if got := c.n.Load() - n0; got != 0 {
		t.Errorf("a deferred attempt fsynced %d times, want 0", got)
	}
	if es, _ := s.Entries(bg); es[0].Attempts != 1 || es[0].NextAttempt.IsZero() {
		t.Errorf("the deferral is not recorded: %+v", es[0])
	}

	// An entry found in flight twice is poison: its hold is fsynced.
	e := out.Entry
	e.Inflight, e.Crashes = true, 1
	n0 = c.n.Load()
	if out := a.Attempt(bg, e); out.Entry.State != Held {
		t.Fatalf("poison entry: %+v", out)
	}
	if got := c.n.Load() - n0; got != 1 {
		t.Errorf("a hold fsynced %d times, want 1", got)
	}

	putN(t, s, 1, "b")
	es, _ = s.Entries(bg)
	answer.Store(errors.New(""))
	n0 = c.n.Load()
	var fresh Entry
	for _, e := range es {
		if e.State == Queued {
			fresh = e
		}
	}
	if out := a.Attempt(bg, fresh); !out.Gone || out.Err != nil {
		t.Fatalf("delivered attempt: %+v", out)
	}
	if got := c.n.Load() - n0; got != 1 {
		t.Errorf("a delivery fsynced %d times, want 1 (the removal)", got)
	}
}
