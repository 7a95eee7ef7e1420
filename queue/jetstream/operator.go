package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/queue"
)

// mirror is every process's view of the shared entries: a key-value
// watcher on the entries bucket applies each change as it is stored, so
// Entries and Len answer from memory (like the local queue's) without a
// scan of the bucket per request. Its memory is one decoded entry per
// message in the shared queue (MaxDepth bounds them).
type mirror struct {
	mu      sync.Mutex
	entries map[queue.ID]queue.Entry
	applied uint64        // the highest bucket revision reflected
	synced  bool          // the initial values are in
	changed chan struct{} // closed and replaced at every change of applied
}

func newMirror() *mirror {
	return &mirror{entries: map[queue.ID]queue.Entry{}, changed: make(chan struct{})}
}

// bump records that the mirror reflects revision rev; under m.mu.
func (m *mirror) bump(rev uint64) {
	if rev > m.applied {
		m.applied = rev
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// errReconnected ends a watcher when the connection comes back: what the
// server holds is read again rather than waiting for the watcher to
// notice its consumer is gone.
var errReconnected = errors.New("reconnected")

// mirrorLoop keeps q.m current until Shutdown. A watcher that stops (the
// connection closed, the server went away) is started again after a
// second, at once after a reconnection, and rebuilds the view from the
// bucket's values.
func (q *Queue) mirrorLoop() {
	defer q.loops.Done()
	for {
		err := q.watch()
		if errors.Is(err, errReconnected) {
			select {
			case <-q.stop:
				return
			default:
			}
			continue
		}
		select {
		case <-q.stop:
			return
		case <-time.After(time.Second):
		}
		q.dcfg.Logger.Warn("jetstream: entry watcher stopped; starting again", "err", err)
	}
}

// watchStarting, when set (by a test), runs between the read of the
// stream's last sequence and the start of a watch.
var watchStarting atomic.Pointer[func(*Store)]

// watch runs one watcher until it stops or Shutdown begins.
func (q *Queue) watch() error {
	ctx, cancel := context.WithCancel(q.abort)
	defer cancel()
	go func() { // Shutdown does not wait for a request to an absent server
		select {
		case <-q.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	reconnected := q.s.nc.StatusChanged(nats.CONNECTED)
	defer q.s.nc.RemoveStatusListener(reconnected)
	// Every change up to the stream's last sequence now is in the initial
	// values the watcher delivers before its nil marker.
	var start uint64
	if st, err := q.s.js.Stream(ctx, "KV_"+q.s.recs.Bucket()); err == nil {
		if info, err := st.Info(ctx); err == nil {
			start = info.State.LastSeq
		}
	}
	if h := watchStarting.Load(); h != nil {
		(*h)(q.s)
	}
	w, err := q.s.recs.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	fresh := map[queue.ID]queue.Entry{}
	// seen is the newest revision among the initial values: a change
	// stored between the Info above and the watch's start is among them,
	// and with start alone the view would count itself behind it until
	// the next change came (Sync waiting for ever).
	var seen uint64
	for {
		var kve jetstream.KeyValueEntry
		var ok bool
		select {
		case <-q.stop:
			return nil
		case <-reconnected:
			return errReconnected
		case kve, ok = <-w.Updates():
		}
		if !ok {
			return errors.New("watcher closed")
		}
		if kve == nil { // the initial values are all in: serve them
			q.m.mu.Lock()
			q.m.entries, fresh, q.m.synced = fresh, nil, true
			q.m.bump(max(start, seen))
			q.m.mu.Unlock()
			continue
		}
		id := queue.ID(kve.Key())
		var e queue.Entry
		keep := false
		if kve.Operation() == jetstream.KeyValuePut {
			// A record that does not decode is moved aside by the reads
			// that meet it; the view leaves it out.
			if rec, _, err := q.s.decodeKey(kve.Key(), kve.Value()); err == nil {
				e, keep = rec, true
			}
		}
		if fresh != nil {
			seen = max(seen, kve.Revision())
			if keep {
				fresh[id] = e
			} else {
				delete(fresh, id)
			}
			continue
		}
		q.m.mu.Lock()
		if keep {
			q.m.entries[id] = e
		} else {
			delete(q.m.entries, id)
		}
		q.m.bump(kve.Revision())
		q.m.mu.Unlock()
	}
}

// Entries returns a snapshot of every entry of the shared queue, oldest
// first, as this process's watcher last saw them: changes made by any
// process appear within the time a change takes to reach it (Sync waits
// for them). Before the watcher's first full read, and while NATS is
// unreachable, it is what was last seen.
func (q *Queue) Entries() []queue.Entry {
	q.m.mu.Lock()
	out := make([]queue.Entry, 0, len(q.m.entries))
	for _, e := range q.m.entries {
		e.Envelope.RcptTo = append([]string(nil), e.Envelope.RcptTo...)
		e.Done = append([]string(nil), e.Done...)
		out = append(out, e)
	}
	q.m.mu.Unlock()
	sortByAge(out)
	return out
}

// Len returns the number of entries of the shared queue, held ones
// included (the whole fleet's, not this process's share), as Entries
// sees them.
func (q *Queue) Len() int {
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	return len(q.m.entries)
}

// Held returns the number of held entries of the shared queue, as
// Entries sees them.
func (q *Queue) Held() int {
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	n := 0
	for _, e := range q.m.entries {
		if e.State == queue.Held {
			n++
		}
	}
	return n
}

// Stats is the shared queue at a glance.
type Stats struct {
	Entries    int    // every entry, held ones included (Len)
	Held       int    // held: the poison guard, MaxDeliver, a bounce policy of hold
	Waiting    uint64 // work messages not yet handed to any process
	InDelivery int    // handed out and not yet acknowledged
}

// Stats counts the entries (from the watcher's view) and asks the server
// for the delivery consumer's lag; an error is the server's, with the
// counts that are known.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Entries: q.Len(), Held: q.Held()}
	l, err := q.Lag(ctx)
	st.Waiting, st.InDelivery = l.Waiting, l.InDelivery
	return st, err
}

// Sync waits until Entries reflects every change stored before the call,
// by any process, or ctx ends.
func (q *Queue) Sync(ctx context.Context) error {
	octx, cancel, err := q.s.op(ctx)
	if err != nil {
		return err
	}
	st, err := q.s.js.Stream(octx, "KV_"+q.s.recs.Bucket())
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = st.Info(octx)
	}
	cancel()
	if err != nil {
		return q.s.wrap("sync", err)
	}
	for {
		q.m.mu.Lock()
		done, changed := q.m.synced && q.m.applied >= info.State.LastSeq, q.m.changed
		q.m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Entry reads one entry from the store (queue.ErrNotFound when absent).
func (q *Queue) Entry(id queue.ID) (queue.Entry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), q.s.cfg.Timeout)
	defer cancel()
	e, _, _, err := q.s.get(ctx, id)
	return e, err
}

// operable reads an entry an operator acts on; one with an attempt in
// flight (in this process or another) is refused with queue.ErrInFlight.
func (q *Queue) operable(ctx context.Context, id queue.ID) (queue.Entry, bodyInfo, uint64, error) {
	e, bi, rev, err := q.s.get(ctx, id)
	if err != nil {
		return e, bi, rev, err
	}
	if e.Inflight {
		return e, bi, rev, fmt.Errorf("%w: %s; try again", queue.ErrInFlight, id)
	}
	return e, bi, rev, nil
}

// Retry makes an entry due now: a queued one is claimed at once instead
// of at its backoff time, a held one is released (its crash count reset).
// An entry being delivered is refused with queue.ErrInFlight; one changed
// by another process meanwhile fails the revision check and returns an
// error (try again).
func (q *Queue) Retry(ctx context.Context, id queue.ID) error {
	ctx, cancel, err := q.s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	e, bi, rev, err := q.operable(ctx, id)
	if err != nil {
		return err
	}
	was := e.State
	e.NextAttempt = time.Now()
	if e.State == queue.Held {
		e.State, e.Crashes = queue.Queued, 0
	}
	if err := q.s.update(ctx, id, encodeEntry(e, bi), rev); err != nil {
		return err
	}
	// The work message waits out its backoff (a negative acknowledgment
	// with a delay) and a second one for the ID is refused: replace it.
	if m, err := q.work.GetLastMsgForSubject(ctx, q.wsubj+string(id)); err == nil {
		if err := q.work.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return q.s.wrap("retry "+string(id), err)
		}
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return q.s.wrap("retry "+string(id), err)
	}
	if err := q.schedule(ctx, id); err != nil {
		return err
	}
	q.dcfg.Logger.InfoContext(ctx, "queue: retry requested", "id", id, "state", was, "attempts", e.Attempts)
	return nil
}

// Bounce gives up on an entry's pending recipients now, as the local
// queue's Bounce does (queue.BounceEntry): the DSN is queued in the
// shared queue, then the entry is removed. An entry being delivered is
// refused with queue.ErrInFlight.
func (q *Queue) Bounce(ctx context.Context, id queue.ID) error {
	ctx, cancel, err := q.s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	e, _, _, err := q.operable(ctx, id)
	if err != nil {
		return err
	}
	if err := queue.BounceEntry(ctx, q.s, q.dcfg, q.put, e); err != nil {
		return err
	}
	// Its work message, if any, finds no entry and is acknowledged.
	return nil
}

func sortByAge(es []queue.Entry) {
	slices.SortFunc(es, func(a, b queue.Entry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmpString(string(a.ID), string(b.ID))
	})
}
