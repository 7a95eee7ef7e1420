package queue

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// BouncePolicy is what happens to a message a recipient refused for good.
type BouncePolicy int

const (
	// Bounce sends a delivery status notification (RFC 3464) to the
	// envelope sender, unless the sender is null. The default.
	Bounce BouncePolicy = iota
	// Hold keeps the message Held (a dead letter) for an operator to
	// release or remove; nothing is sent.
	Hold
)

// Defaults of the zero Config and SpoolConfig fields.
const (
	DefaultWorkers         = 16
	DefaultRetryBase       = time.Minute
	DefaultRetryMax        = time.Hour
	DefaultMaxLifetime     = 5 * 24 * time.Hour // RFC 5321 §4.5.4.1
	DefaultMaxCrashes      = 3
	DefaultMaxDepth        = 100000
	DefaultMinFreeBytes    = 256 << 20
	DefaultMaxMessageBytes = 64 << 20
	DefaultSegmentBytes    = 64 << 20
	DefaultMaxBatchBytes   = 8 << 20
	DefaultSweepInterval   = time.Minute
)

// Config configures a Queue. Deliverer is required unless StoreOnly says
// this queue only stores (a zero Config is refused with ErrNoDeliverer:
// a queue that silently never delivers would look like lost mail); every
// other zero field means its documented default.
type Config struct {
	// Deliverer delivers due messages.
	Deliverer Deliverer
	// StoreOnly runs the queue without a Deliverer: it accepts, stores and
	// recovers mail and never attempts it, for a producer whose mail
	// another process delivers (queue/jetstream) or a spool that is only
	// inspected. Ignored when Deliverer is set.
	StoreOnly bool
	// Workers is how many deliveries run at once; 0 means 16.
	Workers int
	// RetryBase is the first retry delay, doubled after each temporary
	// failure up to RetryMax, with jitter; 0 means 1 minute and 1 hour.
	RetryBase, RetryMax time.Duration
	// MaxLifetime is how long a message may stay queued before its
	// pending recipients bounce; 0 means 5 days (RFC 5321 §4.5.4.1).
	MaxLifetime time.Duration
	// MaxCrashes is how many delivery attempts of one message may panic
	// or die with the process before the message is held; 0 means 3.
	MaxCrashes int
	// BouncePolicy decides what a permanent failure does.
	BouncePolicy BouncePolicy
	// Hostname names this system in bounces; "" means os.Hostname.
	Hostname string

	// Backpressure: Enqueue returns a *BusyError when the queue holds
	// MaxDepth entries (0 means 100,000; negative disables), when its oldest
	// entry is older than MaxAge (0 disables), or when the store reports
	// less than MinFreeBytes free (0 means 256 MiB; stores that are not a
	// SpaceReporter are not checked).
	MaxDepth     int
	MaxAge       time.Duration
	MinFreeBytes uint64

	// MaxMessageBytes bounds one message; 0 means 64 MiB.
	MaxMessageBytes int64

	// Spool configures the local spool that Open creates. Its Logger,
	// Metrics and MaxMessageBytes default to the Queue's.
	Spool SpoolConfig

	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil is a no-op
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.MaxCrashes <= 0 {
		c.MaxCrashes = DefaultMaxCrashes
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Metrics = filter.OrNop(c.Metrics)
	return c
}

// Enqueuer queues a message for delivery and returns when it is durable:
// a *Queue, or a shared queue from another backend (queue/jetstream). The
// quarantine releases into one, a router enqueues into one.
type Enqueuer interface {
	Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (ID, error)
}

var _ Enqueuer = (*Queue)(nil)

// Queue accepts messages durably and delivers them. It is safe for
// concurrent use.
type Queue struct {
	cfg       Config
	store     Store
	ownsStore bool

	mu     sync.Mutex // guards items, due, closed
	items  map[ID]*item
	due    dueHeap
	closed bool

	depth   atomic.Int64
	oldest  atomic.Int64 // Unix nanoseconds of the oldest entry's Created; 0 when empty
	free    atomic.Uint64
	freeAt  atomic.Int64 // when free was measured, Unix nanoseconds
	freeErr atomic.Bool

	wake     chan struct{}
	stop     chan struct{}
	ctx      context.Context // delivery attempts; cancelled when Shutdown gives up waiting
	cancel   context.CancelFunc
	sched    sync.WaitGroup
	inflight sync.WaitGroup
	slots    chan struct{}
	att      *Attempter // nil without a Deliverer
}

type item struct {
	e       Entry
	running bool
	index   int // in the due heap; -1 when not in it
}

// Open opens the local spool in dir and a queue over it.
func Open(dir string, cfg Config) (*Queue, error) {
	if cfg.Deliverer == nil && !cfg.StoreOnly {
		return nil, ErrNoDeliverer
	}
	cfg = cfg.withDefaults()
	sc := cfg.Spool
	if sc.Logger == nil {
		sc.Logger = cfg.Logger
	}
	if sc.Metrics == nil {
		sc.Metrics = cfg.Metrics
	}
	if sc.MaxMessageBytes == 0 {
		sc.MaxMessageBytes = cfg.MaxMessageBytes
	}
	s, err := OpenSpool(dir, sc)
	if err != nil {
		return nil, err
	}
	q, err := New(s, cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	q.ownsStore = true
	return q, nil
}

// New returns a queue over a store and recovers it: every entry is
// scheduled, and an entry whose attempt was in flight when the process
// died counts a crash (at MaxCrashes it is held). Shutdown does not close
// a store passed to New.
func New(store Store, cfg Config) (*Queue, error) {
	if cfg.Deliverer == nil && !cfg.StoreOnly {
		return nil, ErrNoDeliverer
	}
	cfg = cfg.withDefaults()
	q := &Queue{
		cfg:   cfg,
		store: store,
		items: make(map[ID]*item),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		slots: make(chan struct{}, cfg.Workers),
	}
	if cfg.Deliverer != nil {
		q.att, _ = NewAttempter(store, cfg, q.put)
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	ctx := context.Background()
	entries, err := store.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: recovery: %w", err)
	}
	for _, e := range entries {
		if e.Inflight {
			e.Inflight = false
			e.Crashes++
			e.LastError = "process ended during delivery attempt"
			if e.Crashes >= cfg.MaxCrashes {
				e.State = Held
				cfg.Logger.Error("queue: message held: delivery died repeatedly", "id", e.ID, "crashes", e.Crashes)
				cfg.Metrics.Add("portcullis_queue_held_total", 1, "reason", "poison")
			}
			if err := store.Update(ctx, e); err != nil {
				return nil, fmt.Errorf("queue: recovery: %w", err)
			}
		}
		q.add(e)
	}
	q.refreshGauges()
	q.measureFree()
	cfg.Logger.Info("queue: recovered", "entries", len(entries))
	q.sched.Add(1)
	go q.scheduler()
	return q, nil
}

// add puts an entry in the index and, if queued, in the due heap.
func (q *Queue) add(e Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := &item{e: e, index: -1}
	q.items[e.ID] = it
	q.depth.Add(1)
	if e.State == Queued {
		heap.Push(&q.due, it)
	}
}

// Enqueue stores a message and returns when it is durable: a gateway
// answers 250 after it returns nil, never before. A *BusyError means
// backpressure (its Reply is the SMTP answer); a message over
// MaxMessageBytes is a *filter.LimitError. A body that tells its length
// (Len() int, as bytes.Reader does) or an estimate of it (SizeHint() int64)
// is read into one buffer of that size rather than a growing one.
func (q *Queue) Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (ID, error) {
	if len(env.RcptTo) == 0 {
		return "", ErrNoRecipients
	}
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	if err := q.busy(); err != nil {
		q.cfg.Metrics.Add("portcullis_queue_busy_total", 1, "reason", string(err.Reason))
		return "", err
	}
	b, err := readBody(body, q.cfg.MaxMessageBytes+1)
	if err != nil {
		return "", fmt.Errorf("queue: reading message: %w", err)
	}
	if int64(len(b)) > q.cfg.MaxMessageBytes {
		return "", &filter.LimitError{Limit: filter.LimitMessageBytes, Max: q.cfg.MaxMessageBytes}
	}
	return q.put(ctx, env, b)
}

// readBody reads at most limit bytes, allocating once when the reader
// tells its length (bytes.Reader, strings.Reader, bytes.Buffer) or about
// it (SizeHint: a message with headers added and removed).
func readBody(r io.Reader, limit int64) ([]byte, error) {
	if h, ok := r.(interface{ SizeHint() int64 }); ok && h.SizeHint() > 0 {
		b := make([]byte, 0, min(h.SizeHint(), limit)+1) // +1: a read at the hint sees EOF, not a full buffer
		for int64(len(b)) < limit {
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)] // past the hint: grow as io.ReadAll does
			}
			n, err := r.Read(b[len(b):min(int64(cap(b)), limit)])
			b = b[:len(b)+n]
			if err == io.EOF {
				return b, nil
			}
			if err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	if l, ok := r.(interface{ Len() int }); ok {
		n := min(int64(l.Len()), limit)
		b := make([]byte, n, n+1)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		// A reader whose length changed under us is read the slow way.
		var one [1]byte
		if k, _ := r.Read(one[:]); k == 0 {
			return b, nil
		}
		b = append(b, one[0])
		rest, err := io.ReadAll(io.LimitReader(r, limit-int64(len(b))))
		return append(b, rest...), err
	}
	return io.ReadAll(io.LimitReader(r, limit))
}

// put stores and schedules a message without backpressure (bounces use it).
func (q *Queue) put(ctx context.Context, env filter.Envelope, body []byte) (ID, error) {
	e := newEntry(env, body, time.Now())
	if err := q.store.Put(ctx, e, body); err != nil {
		q.cfg.Metrics.Add("portcullis_queue_enqueue_errors_total", 1)
		return "", err
	}
	e.Created = time.UnixMilli(e.Created.UnixMilli())
	q.mu.Lock()
	q.oldest.CompareAndSwap(0, e.Created.UnixNano())
	q.mu.Unlock()
	q.add(e)
	q.cfg.Metrics.Add("portcullis_queue_enqueued_total", 1)
	q.cfg.Metrics.Set("portcullis_queue_depth", float64(q.depth.Load()))
	q.poke()
	q.cfg.Logger.InfoContext(ctx, "queue: enqueued", "id", e.ID, filter.LogMessageID, filter.MessageIDOf(ctx),
		"from", env.MailFrom, "rcpts", len(env.RcptTo), "size", e.Size)
	return e.ID, nil
}

// newEntry returns a new entry for a message, due now.
func newEntry(env filter.Envelope, body []byte, now time.Time) Entry {
	env.RcptTo = slices.Clone(env.RcptTo)
	return Entry{ID: newID(now), Envelope: env, Size: int64(len(body)), Created: now, NextAttempt: now}
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// busy applies backpressure.
func (q *Queue) busy() *BusyError {
	if d := q.depth.Load(); q.cfg.MaxDepth > 0 && d >= int64(q.cfg.MaxDepth) {
		return &BusyError{Reason: BusyDepth, Detail: fmt.Sprintf("depth %d >= %d", d, q.cfg.MaxDepth)}
	}
	if o := q.oldest.Load(); q.cfg.MaxAge > 0 && o != 0 {
		if age := time.Since(time.Unix(0, o)); age > q.cfg.MaxAge {
			return &BusyError{Reason: BusyAge, Detail: fmt.Sprintf("oldest entry %s old > %s", age.Round(time.Second), q.cfg.MaxAge)}
		}
	}
	// Statfs at most every 100 ms: cheap enough, and a disk does not fill
	// faster than that from one gateway's enqueues.
	now := time.Now().UnixNano()
	if at := q.freeAt.Load(); now-at > int64(100*time.Millisecond) && q.freeAt.CompareAndSwap(at, now) {
		q.measureFree()
	}
	if free := q.free.Load(); free < q.cfg.MinFreeBytes {
		return &BusyError{Reason: BusyDisk, Detail: fmt.Sprintf("%d bytes free < %d", free, q.cfg.MinFreeBytes)}
	}
	return nil
}

// measureFree asks the store for its free space; a store that cannot say
// is never refused for space.
func (q *Queue) measureFree() {
	free := ^uint64(0)
	if sr, ok := q.store.(SpaceReporter); ok {
		f, err := sr.FreeBytes()
		if err == nil {
			free = f
		} else if !q.freeErr.Swap(true) {
			q.cfg.Logger.Warn("queue: free space unknown; disk backpressure off", "err", err)
		}
	}
	q.free.Store(free)
	q.freeAt.Store(time.Now().UnixNano())
}

// refreshGauges recomputes depth and the age of the oldest entry.
func (q *Queue) refreshGauges() {
	q.mu.Lock()
	var oldest time.Time
	for _, it := range q.items {
		if oldest.IsZero() || it.e.Created.Before(oldest) {
			oldest = it.e.Created
		}
	}
	n := len(q.items)
	q.mu.Unlock()
	if oldest.IsZero() {
		q.oldest.Store(0)
		q.cfg.Metrics.Set("portcullis_queue_oldest_seconds", 0)
	} else {
		q.oldest.Store(oldest.UnixNano())
		q.cfg.Metrics.Set("portcullis_queue_oldest_seconds", time.Since(oldest).Seconds())
	}
	q.cfg.Metrics.Set("portcullis_queue_depth", float64(n))
}

// Len returns the number of entries, held ones included.
func (q *Queue) Len() int { return int(q.depth.Load()) }

// Entries returns a snapshot of every entry, oldest first.
func (q *Queue) Entries() []Entry {
	q.mu.Lock()
	out := make([]Entry, 0, len(q.items))
	for _, it := range q.items {
		out = append(out, it.e.clone())
	}
	q.mu.Unlock()
	sortEntries(out)
	return out
}

// Release puts a held entry back in the queue, due now, with its crash
// count reset. Releasing an entry that is not held does nothing.
func (q *Queue) Release(ctx context.Context, id ID) error {
	it, err := q.claim(id)
	if err != nil {
		return err
	}
	e := it.e.clone()
	if e.State != Held {
		q.unclaim(it, it.e)
		return nil
	}
	e.State, e.Crashes, e.NextAttempt = Queued, 0, time.Now()
	if err := q.store.Update(ctx, e); err != nil {
		q.unclaim(it, it.e)
		return err
	}
	q.unclaim(it, e)
	q.poke()
	return nil
}

// Delete removes an entry that is not being delivered, e.g. a held dead
// letter an operator gave up on. It is gone for good: Delete is the one
// way a message leaves the queue undelivered, and it is logged.
func (q *Queue) Delete(ctx context.Context, id ID) error {
	it, err := q.claim(id)
	if err != nil {
		return err
	}
	if err := q.store.Remove(ctx, id); err != nil {
		q.unclaim(it, it.e)
		return err
	}
	q.cfg.Logger.WarnContext(ctx, "queue: entry deleted undelivered", "id", id, "state", it.e.State, "last_error", it.e.LastError)
	q.cfg.Metrics.Add("portcullis_queue_deleted_total", 1)
	q.drop(it)
	return nil
}

// claim takes an entry that is not being delivered out of the schedule
// while an operator acts on it.
func (q *Queue) claim(id ID) (*item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.items[id]
	if it == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if it.running {
		return nil, fmt.Errorf("%w: %s; try again", ErrInFlight, id)
	}
	if it.index >= 0 {
		heap.Remove(&q.due, it.index)
	}
	it.running = true
	return it, nil
}

// unclaim puts a claimed entry back with its (new) state.
func (q *Queue) unclaim(it *item, e Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it.e = e
	it.running = false
	if e.State == Queued && !q.closed {
		heap.Push(&q.due, it)
	}
}

// scheduler starts attempts as they fall due, at most Workers at once.
func (q *Queue) scheduler() {
	defer q.sched.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	gauges := time.NewTicker(time.Second)
	defer gauges.Stop()
	for {
		var wait time.Duration = time.Hour
		if q.att != nil {
			q.mu.Lock()
			for q.due.Len() > 0 {
				it := q.due[0]
				if d := time.Until(it.e.NextAttempt); d > 0 {
					wait = d
					break
				}
				if !q.takeSlot() {
					break // a finishing attempt frees a slot and pokes
				}
				heap.Pop(&q.due)
				it.running = true
				q.inflight.Add(1)
				go q.attempt(it)
			}
			q.mu.Unlock()
		}
		timer.Reset(wait)
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
		case <-gauges.C:
			q.refreshGauges()
		}
	}
}

func (q *Queue) takeSlot() bool {
	select {
	case q.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// attempt runs one delivery attempt of an entry and reschedules or
// forgets it by the outcome.
func (q *Queue) attempt(it *item) {
	defer func() {
		<-q.slots
		q.inflight.Done()
		q.poke()
	}()
	q.mu.Lock()
	e := it.e.clone()
	q.mu.Unlock()
	out := q.att.Attempt(q.ctx, e)
	if out.Gone {
		q.drop(it)
		return
	}
	q.unclaim(it, out.Entry)
}

func (q *Queue) drop(it *item) {
	q.mu.Lock()
	if _, ok := q.items[it.e.ID]; ok {
		delete(q.items, it.e.ID)
		q.depth.Add(-1)
	}
	q.mu.Unlock()
	q.cfg.Metrics.Set("portcullis_queue_depth", float64(q.depth.Load()))
}

// Shutdown stops accepting messages and starting attempts, and waits for
// the attempts in flight. When ctx ends first, the attempts are cancelled
// (their outcome is still recorded) and ctx's error is returned. A queue
// from Open closes its spool.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	q.sched.Wait()
	done := make(chan struct{})
	go func() { q.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		q.cancel()
		<-done
	}
	q.cancel()
	if q.ownsStore {
		if cerr := q.store.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Close is Shutdown without a deadline.
func (q *Queue) Close() error { return q.Shutdown(context.Background()) }

// dueHeap orders queued entries by next attempt.
type dueHeap []*item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].e.NextAttempt.Before(h[j].e.NextAttempt) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*h = old[:len(old)-1]
	return it
}

// clip bounds an error text kept in an entry's metadata.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 1000 {
		s = strings.ToValidUTF8(s[:1000], "")
	}
	return s
}
