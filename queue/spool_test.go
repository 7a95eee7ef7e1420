package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/diskfs"
)

func putN(t *testing.T, s *Spool, n int, tag string) (acked []ID, failed int) {
	t.Helper()
	for i := range n {
		now := time.Now()
		e := Entry{ID: newID(now), Envelope: testEnv(), Created: now, NextAttempt: now}
		if err := s.Put(bg, e, []byte(testMsg(fmt.Sprintf("%s-%d-%s", tag, i, e.ID)))); err != nil {
			failed++
			continue
		}
		acked = append(acked, e.ID)
	}
	return acked, failed
}

func checkPresent(t *testing.T, dir string, ids []ID) map[ID]Entry {
	t.Helper()
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, err := s.Entries(bg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[ID]Entry{}
	for _, e := range es {
		got[e.ID] = e
	}
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("acknowledged entry %s lost", id)
			continue
		}
		if b := readAll(t, s, id); !strings.Contains(string(b), string(id)) {
			t.Errorf("entry %s has the wrong body", id)
		}
	}
	return got
}

func readAll(t *testing.T, s Store, id ID) []byte {
	t.Helper()
	b, err := s.Body(bg, id)
	if err != nil {
		t.Fatalf("body %s: %v", id, err)
	}
	defer b.Close()
	out := make([]byte, b.Size())
	if _, err := b.ReadAt(out, 0); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFsyncErrorFailsPutAndNothingAckedIsLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write bool
		err   error
	}{
		{"fsync EIO", false, syscall.EIO},
		{"disk full", true, syscall.ENOSPC},
		{"write EIO", true, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &diskfs.Fault{}
			m := newRecMetrics()
			s, err := OpenSpool(dir, SpoolConfig{fs: fs, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			before, _ := putN(t, s, 10, "before")
			fail := fs.FailSyncs
			if tc.write {
				fail = fs.FailWrites
			}
			fail(tc.err)
			q, err := New(s, Config{StoreOnly: true, MinFreeBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				_, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("during")))
				if !errors.Is(err, tc.err) {
					t.Fatalf("enqueue during %s: %v", tc.name, err)
				}
				if r := filter.ErrorReply(err); r.Code != 451 {
					t.Errorf("reply to a failed enqueue: %v", r)
				}
			}
			q.Close()
			fail(nil)
			after, failed := putN(t, s, 10, "after")
			if failed != 0 {
				t.Fatalf("%d puts failed after the fault cleared", failed)
			}
			if m.get("portcullis_queue_write_errors_total") < 1 {
				t.Error("write errors not counted")
			}
			s.Close()
			checkPresent(t, dir, append(before, after...))
		})
	}
}

// segments returns the spool's segment files.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "spool", "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func corruptFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "corrupt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// recordsOf decodes a segment file.
func recordsOf(t *testing.T, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	bad, err := scanSegment(bytes.NewReader(b), int64(len(b)), 1<<30, func(r record) { recs = append(recs, r) })
	if err != nil || len(bad) != 0 {
		t.Fatalf("scan: %v %v", bad, err)
	}
	return recs
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedSegmentMovedAsideOthersKept(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := putN(t, s, 20, "x")
	// An update and a removal recorded in the segment must survive the
	// evacuation too.
	es, _ := s.Entries(bg)
	es[1].Attempts = 7
	if err := s.Update(bg, es[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(bg, ids[2]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	recs := recordsOf(t, segs[0])
	victim := recs[5]
	flipByte(t, segs[0], victim.bodyOff+3)

	m := newRecMetrics()
	s, err = OpenSpool(dir, SpoolConfig{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Entries(bg)
	s.Close()
	if len(got) != 18 {
		t.Fatalf("%d entries after recovery, want 18 (20 - removed - damaged)", len(got))
	}
	if m.get("portcullis_queue_corrupt_total") != 1 {
		t.Errorf("corrupt metric: %v", m)
	}
	if cf := corruptFiles(t, dir); len(cf) != 1 || !strings.HasSuffix(cf[0], filepath.Base(segs[0])) {
		t.Errorf("corrupt/ holds %v, want the damaged segment", cf)
	}
	var want []ID
	for _, id := range ids {
		if id != ids[2] && id != victim.id {
			want = append(want, id)
		}
	}
	present := checkPresent(t, dir, want)
	if present[ids[1]].Attempts != 7 {
		t.Errorf("update lost in evacuation: %+v", present[ids[1]])
	}
	if _, ok := present[ids[2]]; ok {
		t.Error("removed entry came back")
	}
	if cf := corruptFiles(t, dir); len(cf) != 1 {
		t.Errorf("a second recovery moved more aside: %v", cf)
	}
}

func TestTornTailCutOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := putN(t, s, 5, "x")
	s.Close()
	seg := segments(t, dir)[0]
	// Half of a record, as a crash in the middle of a write leaves it.
	now := time.Now()
	rec := putRecord(nil, Entry{ID: newID(now), Envelope: testEnv(), Created: now, Size: 4}, []byte("torn"))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(rec[:len(rec)/2])
	f.Close()
	m := newRecMetrics()
	s, err = OpenSpool(dir, SpoolConfig{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m.one("portcullis_queue_corrupt_total{reason,truncated}") != 1 {
		t.Errorf("torn tail not counted as truncated: %v", m)
	}
	checkPresent(t, dir, ids)
	if cf := corruptFiles(t, dir); len(cf) != 1 || !strings.Contains(cf[0], "tail") {
		t.Errorf("corrupt/ holds %v, want one tail", cf)
	}
}

func TestForeignFilesMovedAside(t *testing.T) {
	dir := t.TempDir()
	m := newRecMetrics()
	s, err := OpenSpool(dir, SpoolConfig{SweepInterval: 10 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := putN(t, s, 3, "x")
	// A file dropped into the live spool by something else.
	if err := os.WriteFile(filepath.Join(dir, "spool", "df-garbage"), []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "sweep", func() bool { return len(corruptFiles(t, dir)) == 1 })
	s.Close()
	if m.one("portcullis_queue_corrupt_total{reason,foreign}") != 1 {
		t.Errorf("foreign file not counted: %v", m)
	}
	// And one found at start.
	os.WriteFile(filepath.Join(dir, "spool", "seg-zz.log"), []byte("PQR"), 0o600)
	checkPresent(t, dir, ids)
	if cf := corruptFiles(t, dir); len(cf) != 2 {
		t.Errorf("corrupt/ holds %v", cf)
	}
}

func TestLiveCorruptBodyMovedAsideOthersDelivered(t *testing.T) {
	dir := t.TempDir()
	m := newRecMetrics()
	s, err := OpenSpool(dir, SpoolConfig{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := New(s, Config{StoreOnly: true, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for i := range 30 {
		id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg(fmt.Sprint("live", i))))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	q.Close()
	for _, id := range ids[10:13] {
		s.mu.Lock()
		l := s.index[id]
		path := filepath.Join(s.dir, l.seg.name())
		off := l.bodyOff + 5
		s.mu.Unlock()
		flipByte(t, path, off)
	}
	var delivered atomic.Int32
	q, err = New(s, fastCfg(DeliverFunc(func(_ context.Context, o *Outgoing) []error {
		delivered.Add(1)
		return make([]error, len(o.To))
	}), m))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery", func() bool { return q.Len() == 0 })
	q.Close()
	if delivered.Load() != 27 {
		t.Errorf("delivered %d, want 27", delivered.Load())
	}
	if cf := corruptFiles(t, dir); len(cf) != 3 {
		t.Errorf("corrupt/ holds %v, want 3 records", cf)
	}
	if m.one("portcullis_queue_corrupt_total{reason,checksum}") != 3 {
		t.Errorf("corrupt metric %v", m)
	}
}

func TestOldSegmentsRelocatedAndCollected(t *testing.T) {
	dir := t.TempDir()
	cfg := SpoolConfig{SegmentBytes: 4096, MaxBatchBytes: 4096}
	s, err := OpenSpool(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pinned, _ := putN(t, s, 1, "pinned")
	es, _ := s.Entries(bg)
	p := es[0]
	for i := range 400 {
		ids, _ := putN(t, s, 1, "churn")
		if err := s.Remove(bg, ids[0]); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			p.Attempts = i
			if err := s.Update(bg, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := len(segments(t, dir))
	s.Close()
	if n > relocateBehind+3 {
		t.Errorf("%d segments: a long-lived entry pins old segments", n)
	}
	got := checkPresent(t, dir, pinned)
	if len(got) != 1 || got[pinned[0]].Attempts != 350 {
		t.Errorf("after relocation: %+v", got)
	}
}

// TestLiveBacklogNotRelocated: a backlog whose entries are all live (a
// next hop down) is not copied forward segment after segment: copying it
// would free nothing. Every put is in the segments once.
func TestLiveBacklogNotRelocated(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolConfig{SegmentBytes: 4096, MaxBatchBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := putN(t, s, 1, "backlog")
	first := segments(t, dir)[0]
	more, _ := putN(t, s, 199, "backlog")
	ids = append(ids, more...)
	s.Close()
	segs := segments(t, dir)
	if len(segs) <= relocateBehind+2 {
		t.Fatalf("%d segments: the test needs more than %d", len(segs), relocateBehind+2)
	}
	// Relocation would have emptied and deleted the first segments.
	if segs[0] != first {
		t.Errorf("first segment %s, want %s still there: the live backlog was copied forward", filepath.Base(segs[0]), filepath.Base(first))
	}
	puts := map[ID]int{}
	for _, seg := range segs {
		for _, r := range recordsOf(t, seg) {
			if r.kind == kindPut {
				puts[r.id]++
			}
		}
	}
	for _, id := range ids {
		if puts[id] != 1 {
			t.Errorf("entry %s put %d times in the segments, want once", id, puts[id])
		}
	}
	checkPresent(t, dir, ids)
}

func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenSpool(dir, SpoolConfig{}); err == nil {
		t.Fatal("a second spool opened the same directory")
	}
}
