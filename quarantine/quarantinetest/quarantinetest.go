// Package quarantinetest is the conformance suite every quarantine.Store
// must pass (the local Dir, the JetStream store), and the faulty-update
// drill run over a store and a queue.
package quarantinetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/storetest"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/queuetest"
	"github.com/portcullis-mail/portcullis/relay"
)

// Opener opens the quarantine store at one location. Opening
// again after Close must see everything that was acknowledged.
type Opener func() (quarantine.Store, error)

// Run runs the conformance suite of quarantine.Store: the
// store contract, then the Quarantine's operations (hold, list, get,
// release, delete, expiry, digest, re-scan) over the store. newStore is
// called once per subtest and returns an opener for a fresh location.
func Run(t *testing.T, newStore func(t *testing.T) Opener) {
	storetest.Run(t, kind, func(t *testing.T) func() (storetest.Store[quarantine.Held, quarantine.ID], error) {
		open := newStore(t)
		return func() (storetest.Store[quarantine.Held, quarantine.ID], error) {
			s, err := open()
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"ListFiltersAndPages", qList},
		{"GetReleaseDelete", qRelease},
		{"ExpirySparesActiveOperations", qExpire},
		{"Digest", qDigest},
		{"RescanReleasesCleanKeepsRest", qRescan},
		{"RescanResumesAfterCrash", qRescanResume},
		{"RescanRateLimited", qRescanRate},
		{"RescanTempfailKeepsUnchanged", qRescanTempfail},
		{"ExpirySparesMessageUnderRescan", qExpireDuringRescan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// kind describes quarantine.Held to the shared store suite.
var kind = storetest.Kind[quarantine.Held, quarantine.ID]{
	New: Held,
	ID:  func(h quarantine.Held) quarantine.ID { return h.ID },
	List: func(ctx context.Context, s storetest.Store[quarantine.Held, quarantine.ID]) ([]quarantine.Held, error) {
		return s.(quarantine.Store).All(ctx)
	},
	Change: func(h quarantine.Held) quarantine.Held {
		h.Action, h.Score = filter.Reject, 20
		h.Symbols = []filter.Symbol{{Name: "AV_OTHER", Score: 20, Detail: "still bad"}}
		h.Rescans, h.RescannedAt, h.RescanRun, h.Releasing = 2, h.HeldAt.Add(time.Hour), "run-1", true
		return h
	},
	Scribble: func(h *quarantine.Held) { h.Envelope.RcptTo[0], h.Symbols[0].Name = "changed@example.org", "CHANGED" },
	Clone: func(h quarantine.Held) quarantine.Held {
		h.Envelope.RcptTo = slices.Clone(h.Envelope.RcptTo)
		h.Symbols = slices.Clone(h.Symbols)
		return h
	},
	Check:       CheckHeld,
	ErrNotFound: quarantine.ErrNotFound,
	ErrClosed:   quarantine.ErrClosed,
}

func qOpen(t *testing.T, open Opener) quarantine.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func qClose(t *testing.T, s quarantine.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

var ctx = context.Background()

var heldSeq atomic.Int64

// Held returns a distinct record with every field set and its message.
func Held(n, size int) (quarantine.Held, []byte) {
	s := heldSeq.Add(1)
	id := quarantine.ID(fmt.Sprintf("q%012d-%d", s, n))
	raw := queuetest.Body(queue.ID(id), size)
	sum := sha256.Sum256(raw)
	return quarantine.Held{
		ID: id,
		Envelope: filter.Envelope{ClientIP: netip.MustParseAddr("2001:db8::7"), Helo: "mx.example.org", MailFrom: "a@example.org",
			RcptTo: []string{"b@example.net", fmt.Sprintf("c%d@example.com", n)}, AuthUser: "u", TLS: true},
		Size: int64(len(raw)), Checksum: hex.EncodeToString(sum[:]),
		HeldAt: time.UnixMilli(1_700_000_000_000 + s),
		Action: filter.Quarantine, Score: 7.5,
		Symbols: []filter.Symbol{{Name: "AV_TEST", Score: 5, Detail: "Eicar-Signature"}, {Name: "RULE_X", Score: 2.5}},
	}, raw
}

// CheckHeld compares a record a store returned with what was stored.
func CheckHeld(t *testing.T, got, want quarantine.Held) {
	t.Helper()
	a, err1 := got.MarshalBinary()
	b, err2 := want.MarshalBinary()
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Errorf("record changed in the store:\n got %+v\nwant %+v", got, want)
	}
}

func qAll(t *testing.T, s quarantine.Store) map[quarantine.ID]quarantine.Held {
	t.Helper()
	all, err := s.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if !slices.IsSortedFunc(all, func(a, b quarantine.Held) int { return strings.Compare(string(a.ID), string(b.ID)) }) {
		t.Error("All is not ordered by ID")
	}
	m := map[quarantine.ID]quarantine.Held{}
	for _, h := range all {
		if _, dup := m[h.ID]; dup {
			t.Errorf("%s listed twice", h.ID)
		}
		m[h.ID] = h
	}
	return m
}

// recorder is an Enqueuer that records what it queued.
type recorder struct {
	mu   sync.Mutex
	msgs map[string]int // raw message → times queued
	fail error
}

func (r *recorder) Enqueue(_ context.Context, env filter.Envelope, body io.Reader) (queue.ID, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return "", r.fail
	}
	if r.msgs == nil {
		r.msgs = map[string]int{}
	}
	r.msgs[string(b)]++
	return queue.ID(fmt.Sprintf("r%d", len(r.msgs))), nil
}

func (r *recorder) count(raw []byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[string(raw)]
}

// fakeClock is a settable clock for expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newQuarantine(t *testing.T, s quarantine.Store, cfg quarantine.Config) *quarantine.Manager {
	t.Helper()
	cfg.Store = s
	if cfg.RescanRate == 0 {
		cfg.RescanRate = rate.Inf
	}
	q, err := quarantine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

type heldMsg struct {
	id  quarantine.ID
	raw []byte
}

// hold quarantines a message with the given envelope and symbols.
func hold(t *testing.T, q *quarantine.Manager, from string, to []string, subject string, syms ...string) heldMsg {
	t.Helper()
	raw := []byte("From: " + from + "\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: " + subject + "\r\n\r\nbody of " + subject + "\r\n")
	var v filter.Verdict
	v.Action = filter.Quarantine
	for _, s := range syms {
		v.Symbols = append(v.Symbols, filter.Symbol{Name: s, Score: 1})
		v.Score++
	}
	id, err := q.Hold(ctx, filter.NewMessageBytes(filter.Envelope{MailFrom: from, RcptTo: to}, raw, filter.Limits{}), v)
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	return heldMsg{id, raw}
}

func ids(items []quarantine.Held) []quarantine.ID {
	var out []quarantine.ID
	for _, h := range items {
		out = append(out, h.ID)
	}
	return out
}

func qList(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	q := newQuarantine(t, s, quarantine.Config{Now: clock.Now})
	early := hold(t, q, "x@example.org", []string{"Alice@example.net"}, "early", "CLAMAV_EICAR")
	clock.add(90 * time.Minute) // 04:30
	late := hold(t, q, "y@example.org", []string{"bob@example.net", "alice@example.net"}, "late", "CLAMAV_OTHER", "RBL_X")
	clock.add(time.Minute)
	spam := hold(t, q, "x@example.org", []string{"bob@example.net"}, "spam", "RULE_SPAM")
	four := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		f    quarantine.Query
		want []quarantine.ID
	}{
		{"all", quarantine.Query{}, []quarantine.ID{early.id, late.id, spam.id}},
		{"symbol exact", quarantine.Query{Symbol: "RBL_X"}, []quarantine.ID{late.id}},
		{"symbol prefix", quarantine.Query{Symbol: "CLAMAV_*"}, []quarantine.ID{early.id, late.id}},
		{"engine since 04:00", quarantine.Query{Symbol: "CLAMAV_*", Since: four}, []quarantine.ID{late.id}},
		{"until 04:00", quarantine.Query{Until: four}, []quarantine.ID{early.id}},
		{"recipient any case", quarantine.Query{Recipient: "ALICE@example.net"}, []quarantine.ID{early.id, late.id}},
		{"sender", quarantine.Query{Sender: "x@example.org"}, []quarantine.ID{early.id, spam.id}},
		{"nothing", quarantine.Query{Symbol: "NONE"}, nil},
	} {
		p, err := q.List(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(p.Items), tc.want) || p.Next != "" {
			t.Errorf("%s: %v next %q, want %v", tc.name, ids(p.Items), p.Next, tc.want)
		}
	}
	// Pages of one.
	var got []quarantine.ID
	f := quarantine.Query{Limit: 1}
	for range 10 {
		p, err := q.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(p.Items)...)
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	if want := []quarantine.ID{early.id, late.id, spam.id}; !slices.Equal(got, want) {
		t.Errorf("paged: %v, want %v", got, want)
	}
}

func qRelease(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	rec := &recorder{}
	q := newQuarantine(t, s, quarantine.Config{Queue: rec})
	a := hold(t, q, "x@example.org", []string{"b@example.net"}, "a", "AV_X")
	b := hold(t, q, "x@example.org", []string{"b@example.net"}, "b", "AV_X")
	h, raw, err := q.Get(ctx, a.id)
	if err != nil || !bytes.Equal(raw, a.raw) || h.Action != filter.Quarantine || !slices.Equal(h.Reason(), []string{"AV_X"}) {
		t.Fatalf("get: %+v %q %v", h, raw, err)
	}
	if _, err := q.Release(ctx, a.id); err != nil {
		t.Fatalf("release: %v", err)
	}
	if rec.count(a.raw) != 1 {
		t.Errorf("released message queued %d times, want 1", rec.count(a.raw))
	}
	if _, _, err := q.Get(ctx, a.id); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("get after release: %v, want ErrNotFound", err)
	}
	if err := q.Delete(ctx, b.id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if rec.count(b.raw) != 0 {
		t.Error("a deleted message was queued")
	}
	if _, err := q.Release(ctx, b.id); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("release after delete: %v, want ErrNotFound", err)
	}
	// A queue that refuses: the message stays held, marked for release.
	c := hold(t, q, "x@example.org", []string{"b@example.net"}, "c", "AV_X")
	rec.fail = errors.New("queue down")
	if _, err := q.Release(ctx, c.id); err == nil {
		t.Fatal("release into a failing queue succeeded")
	}
	if h, _, err := q.Get(ctx, c.id); err != nil || !h.Releasing {
		t.Fatalf("after a failed release: %+v %v, want held and Releasing", h, err)
	}
}

func qExpire(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	m := queuetest.NewMetrics()
	q := newQuarantine(t, s, quarantine.Config{Now: clock.Now, Retention: 24 * time.Hour, Metrics: m, Queue: &recorder{fail: errors.New("down")}})
	old := hold(t, q, "x@example.org", []string{"b@example.net"}, "old", "AV_X")
	releasing := hold(t, q, "x@example.org", []string{"b@example.net"}, "releasing", "AV_X")
	if _, err := q.Release(ctx, releasing.id); err == nil {
		t.Fatal("release into a failing queue succeeded")
	}
	clock.add(23 * time.Hour)
	young := hold(t, q, "x@example.org", []string{"b@example.net"}, "young", "AV_X")
	if n, err := q.Expire(ctx); err != nil || n != 0 {
		t.Fatalf("expire before retention: %d %v", n, err)
	}
	clock.add(2 * time.Hour)
	n, err := q.Expire(ctx)
	if err != nil || n != 1 {
		t.Fatalf("expire: %d %v, want 1 (the message under release is spared)", n, err)
	}
	all := qAll(t, s)
	if _, ok := all[old.id]; ok {
		t.Error("an expired message is still there")
	}
	if _, ok := all[releasing.id]; !ok {
		t.Error("a message under release was expired")
	}
	if _, ok := all[young.id]; !ok {
		t.Error("a young message was expired")
	}
	if got := m.Get("portcullis_quarantine_expired_total"); got != 1 {
		t.Errorf("expired metric %v, want 1", got)
	}
}

func qDigest(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	q := newQuarantine(t, s, quarantine.Config{Now: clock.Now})
	hold(t, q, "x@example.org", []string{"alice@example.net"}, "yesterday", "AV_X")
	clock.add(24 * time.Hour)
	since := clock.Now()
	a := hold(t, q, "x@example.org", []string{"Alice@example.net", "bob@example.net"}, "today", "AV_X")
	clock.add(time.Second)
	b := hold(t, q, "y@example.org", []string{"bob@example.net"}, "today2", "RULE_Y")
	d, err := q.Digest(ctx, "", since)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || !slices.Equal(ids(d["alice@example.net"]), []quarantine.ID{a.id}) || !slices.Equal(ids(d["bob@example.net"]), []quarantine.ID{a.id, b.id}) {
		t.Errorf("digest %v", d)
	}
	d, err = q.Digest(ctx, "BOB@example.net", since)
	if err != nil || len(d) != 1 || len(d["bob@example.net"]) != 2 {
		t.Errorf("digest for bob: %v %v", d, err)
	}
}

// flagging returns a pipeline whose one scanner demands quarantine while
// *faulty is true (the faulty update) and passes otherwise.
func flagging(faulty *atomic.Bool, spam string) *filter.Pipeline {
	scan := filter.Func("avscan", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if faulty.Load() {
			r.Add("AV_FAKE_HIT", 0, "Win.Test.FalsePositive")
			r.Demand(filter.Quarantine)
		}
		if spam != "" && m.Header().Get("Subject") == spam {
			r.Add("RULE_REALLY_BAD", 0, "")
			r.Demand(filter.Quarantine)
		}
		return r, nil
	})
	return filter.NewPipeline(filter.Options{}, scan)
}

func qRescan(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	rec := &recorder{}
	m := queuetest.NewMetrics()
	q := newQuarantine(t, s, quarantine.Config{Queue: rec, Metrics: m})
	var faulty atomic.Bool
	faulty.Store(true)
	var msgs []heldMsg
	for i := range 6 {
		msgs = append(msgs, hold(t, q, "x@example.org", []string{"b@example.net"}, fmt.Sprint("m", i), "AV_FAKE_HIT"))
	}
	other := hold(t, q, "x@example.org", []string{"b@example.net"}, "other", "RULE_OTHER")
	faulty.Store(false)
	rep, err := q.Rescan(ctx, flagging(&faulty, "m5"), quarantine.RescanOptions{Filter: quarantine.Query{Symbol: "AV_*"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 6 || rep.Scanned != 6 || rep.Released != 5 || rep.Kept != 1 || rep.Failed != 0 {
		t.Errorf("report %+v: want 6 matched and scanned, 5 released, 1 kept", rep)
	}
	for _, h := range msgs[:5] {
		if rec.count(h.raw) != 1 {
			t.Errorf("clean message queued %d times", rec.count(h.raw))
		}
	}
	h, _, err := q.Get(ctx, msgs[5].id)
	if err != nil || !slices.Equal(h.Reason(), []string{"RULE_REALLY_BAD"}) || h.Rescans != 1 || h.RescanRun != rep.Run {
		t.Errorf("kept message %+v %v: want the new verdict and the run", h, err)
	}
	if _, _, err := q.Get(ctx, other.id); err != nil || rec.count(other.raw) != 0 {
		t.Error("a message outside the filter was touched")
	}
	if got := m.Get("portcullis_quarantine_rescanned_total"); got != 6 {
		t.Errorf("rescanned metric %v, want 6", got)
	}
	if got := m.Get("portcullis_quarantine_released_total"); got != 5 {
		t.Errorf("released metric %v, want 5", got)
	}
	// The same run again: nothing left to do.
	rep2, err := q.Rescan(ctx, flagging(&faulty, "m5"), quarantine.RescanOptions{Filter: quarantine.Query{Symbol: "RULE_REALLY_*"}, Run: rep.Run})
	if err != nil || rep2.Skipped != 1 || rep2.Scanned != 0 {
		t.Errorf("same run again: %+v %v, want the kept message skipped", rep2, err)
	}
}

// failingStore fails Remove after n calls: a crash between queueing a
// released message and removing it.
type failingStore struct {
	quarantine.Store
	removes atomic.Int64
	after   int64
}

func (f *failingStore) Remove(ctx context.Context, id quarantine.ID) error {
	if f.removes.Add(1) > f.after {
		return errors.New("injected crash before remove")
	}
	return f.Store.Remove(ctx, id)
}

func qRescanResume(t *testing.T, open Opener) {
	s := qOpen(t, open)
	rec := &recorder{}
	q := newQuarantine(t, s, quarantine.Config{Queue: rec})
	var faulty atomic.Bool
	faulty.Store(true)
	var msgs []heldMsg
	for i := range 8 {
		msgs = append(msgs, hold(t, q, "x@example.org", []string{"b@example.net"}, fmt.Sprint("m", i), "AV_FAKE_HIT"))
	}
	faulty.Store(false)
	fs := &failingStore{Store: s, after: 3}
	q2 := newQuarantine(t, fs, quarantine.Config{Queue: rec})
	rep, err := q2.Rescan(ctx, flagging(&faulty, ""), quarantine.RescanOptions{Run: "drill"})
	if err == nil || rep.Released != 3 {
		t.Fatalf("interrupted re-scan: %+v %v, want an error after 3 releases", rep, err)
	}
	// "Restart": reopen the store, resume the run.
	qClose(t, s)
	s = qOpen(t, open)
	defer qClose(t, s)
	q3 := newQuarantine(t, s, quarantine.Config{Queue: rec})
	rep, err = q3.Rescan(ctx, flagging(&faulty, ""), quarantine.RescanOptions{Run: "drill"})
	if err != nil || rep.Released != 5 {
		t.Fatalf("resumed re-scan: %+v %v, want the other 5 released", rep, err)
	}
	dups := 0
	for _, m := range msgs {
		switch n := rec.count(m.raw); n {
		case 0:
			t.Errorf("message %s lost", m.id)
		case 1:
		default:
			dups += n - 1
		}
	}
	if dups > 1 {
		t.Errorf("%d duplicates: only the one release cut short may repeat", dups)
	}
	if left := qAll(t, s); len(left) != 0 {
		t.Errorf("%d messages left in quarantine", len(left))
	}
}

func qRescanRate(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	rec := &recorder{}
	q := newQuarantine(t, s, quarantine.Config{Queue: rec, RescanRate: 20, RescanBurst: 1})
	var faulty atomic.Bool
	faulty.Store(true)
	for i := range 6 {
		hold(t, q, "x@example.org", []string{"b@example.net"}, fmt.Sprint("m", i), "AV_FAKE_HIT")
	}
	start := time.Now()
	rep, err := q.Rescan(ctx, flagging(&faulty, ""), quarantine.RescanOptions{})
	if err != nil || rep.Kept != 6 {
		t.Fatalf("%+v %v", rep, err)
	}
	// 6 messages at 20/s with a burst of 1: at least 5 waits of 50 ms.
	if el := time.Since(start); el < 240*time.Millisecond {
		t.Errorf("6 re-scans at 20/s took %v, want >= 250ms", el)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := q.Rescan(c, flagging(&faulty, ""), quarantine.RescanOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("re-scan with a cancelled context: %v", err)
	}
}

func qRescanTempfail(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	rec := &recorder{}
	q := newQuarantine(t, s, quarantine.Config{Queue: rec})
	m := hold(t, q, "x@example.org", []string{"b@example.net"}, "m", "AV_FAKE_HIT")
	down := filter.NewPipeline(filter.Options{}, filter.Func("avscan", func(context.Context, *filter.Message) (filter.Result, error) {
		return filter.Result{}, errors.New("engine still down")
	}))
	rep, err := q.Rescan(ctx, down, quarantine.RescanOptions{})
	if err != nil || rep.Failed != 1 || rep.Released != 0 || rep.Kept != 0 {
		t.Fatalf("re-scan with the engine down: %+v %v, want 1 failed", rep, err)
	}
	h, _, err := q.Get(ctx, m.id)
	if err != nil || !slices.Equal(h.Reason(), []string{"AV_FAKE_HIT"}) || h.Rescans != 0 || rec.count(m.raw) != 0 {
		t.Errorf("after an undecided re-scan: %+v %v, want it held unchanged", h, err)
	}
}

func qExpireDuringRescan(t *testing.T, open Opener) {
	s := qOpen(t, open)
	defer qClose(t, s)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	rec := &recorder{}
	q := newQuarantine(t, s, quarantine.Config{Queue: rec, Now: clock.Now, Retention: time.Hour})
	m := hold(t, q, "x@example.org", []string{"b@example.net"}, "m", "AV_FAKE_HIT")
	clock.add(2 * time.Hour) // past its retention
	scanning, release := make(chan struct{}), make(chan struct{})
	slow := filter.NewPipeline(filter.Options{}, filter.Func("avscan", func(context.Context, *filter.Message) (filter.Result, error) {
		close(scanning)
		<-release
		return filter.Result{}, nil // clean now
	}))
	done := make(chan error, 1)
	go func() {
		_, err := q.Rescan(ctx, slow, quarantine.RescanOptions{})
		done <- err
	}()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // a failing test does not leave the re-scan blocked
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	select {
	case <-scanning:
	case err := <-done:
		t.Fatalf("the re-scan ended before scanning the message: %v", err)
	case <-timeout.C:
		t.Fatal("the re-scan never scanned the message within a minute")
	}
	n, err := q.Expire(ctx)
	if err != nil || n != 0 {
		t.Errorf("expire during the re-scan of the message: %d %v, want it spared", n, err)
	}
	unblock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-timeout.C:
		t.Fatal("the re-scan did not return within a minute of starting")
	}
	if rec.count(m.raw) != 1 {
		t.Errorf("message queued %d times, want 1: the re-scan released it", rec.count(m.raw))
	}
}

// RunDrill runs the faulty-update drill end to end: a scanner that flags
// every message → all held (none rejected, none lost) → the scanner fixed
// → Rescan releases them to a loopback SMTP sink through the queue that
// newQueue builds around the deliverer → delivered = sent.
func RunDrill(t *testing.T, open Opener, newQueue func(t *testing.T, d queue.Deliverer) queue.Enqueuer) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	d, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{sink.Addr}}}, LocalName: "gw.test"})
	if err != nil {
		t.Fatal(err)
	}
	live := newQueue(t, d)
	s := qOpen(t, open)
	defer qClose(t, s)
	m := queuetest.NewMetrics()
	q := newQuarantine(t, s, quarantine.Config{Queue: live, Metrics: m, RescanRate: 500, RescanBurst: 10})
	var faulty atomic.Bool
	faulty.Store(true)
	p := flagging(&faulty, "")
	const sent = 40
	start := time.Now().Add(-time.Second)
	for i := range sent {
		raw := []byte(fmt.Sprintf("From: x@example.org\r\nTo: r%d@example.net\r\nSubject: drill %d\r\n\r\nbody %d\r\n", i, i, i))
		msg := filter.NewMessageBytes(filter.Envelope{MailFrom: "x@example.org", RcptTo: []string{fmt.Sprintf("r%d@example.net", i)}}, raw, filter.Limits{})
		v := p.CheckAll(ctx, msg)
		switch {
		case v.Action == filter.Quarantine:
			if _, err := q.Hold(ctx, msg, v); err != nil {
				t.Fatalf("hold: %v", err)
			}
		case v.Action.Delivers():
			t.Fatalf("the faulty scanner let message %d through", i)
		default:
			t.Fatalf("message %d: %v, want quarantine (not rejected)", i, v.Action)
		}
	}
	if got := len(qAll(t, s)); got != sent {
		t.Fatalf("%d held, want %d", got, sent)
	}
	faulty.Store(false) // the vendor fixed the update
	rep, err := q.Rescan(ctx, p, quarantine.RescanOptions{Filter: quarantine.Query{Symbol: "AV_*", Since: start}})
	if err != nil {
		t.Fatalf("rescan: %v", err)
	}
	if rep.Released != sent {
		t.Errorf("rescan %+v: want %d released", rep, sent)
	}
	got := sink.Wait(sent, 60*time.Second)
	subjects := map[string]int{}
	for _, msg := range got {
		for line := range strings.SplitSeq(string(msg.Data), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				subjects[s]++
			}
		}
	}
	if len(subjects) != sent {
		t.Errorf("delivered %d distinct messages (%d deliveries), sent %d", len(subjects), len(got), sent)
	}
	if left := qAll(t, s); len(left) != 0 {
		t.Errorf("%d left in quarantine", len(left))
	}
	if m.Get("portcullis_quarantine_held_total") != sent || m.Get("portcullis_quarantine_released_total") != sent {
		t.Errorf("metrics: %v", m)
	}
}
