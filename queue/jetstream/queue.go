package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

// errCodeMaxMsgsPerSubject is the server's answer to a second work message
// for an ID that already has one: the publish was not needed.
const errCodeMaxMsgsPerSubject jetstream.ErrorCode = 10077

// QueueConfig configures a shared Queue. Delivery semantics (retries,
// bounces, lifetime, the poison guard) are the local queue's: they are
// passed to it as a queue.Config.
type QueueConfig struct {
	// Delivery is the delivery configuration: Deliverer (nil makes this
	// process a producer that only enqueues), RetryBase,
	// RetryMax, MaxLifetime, MaxCrashes, BouncePolicy, Hostname, Logger,
	// Metrics. Workers is the number of deliveries this process runs at
	// once (0 means 16). MaxDepth bounds the messages waiting in the shared
	// queue (0 means 100,000; negative disables). MaxMessageBytes bounds
	// one message (0 means the store's limit). The rest is unused.
	Delivery queue.Config
	// AckWait is how long a process may hold a claimed message without a
	// sign of life before JetStream gives it to another process; the
	// claim is renewed every AckWait/3 while delivery runs. 0 means 30 s.
	AckWait time.Duration
	// MaxDeliver bounds how many times JetStream hands out one message
	// (attempts, retries and redeliveries after a process died). A
	// message that reaches it is held, never dropped. 0 means 1000.
	MaxDeliver int
	// SweepInterval is how often entries without a work message (their
	// process died between storing and scheduling them) are scheduled
	// again; 0 means 5 minutes.
	SweepInterval time.Duration
}

// Queue is a queue shared by several gateway processes: each runs a Queue
// over the same Store name, messages enqueued by any of them are claimed
// through one JetStream work-queue consumer and delivered by exactly one
// process at a time, and a message whose process dies mid-delivery is
// delivered by another after AckWait (at least once, never zero times).
type Queue struct {
	s     *Store
	cfg   QueueConfig
	dcfg  queue.Config
	work  jetstream.Stream
	cons  jetstream.Consumer
	wsubj string // "<name>.work."

	slots    chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	loops    sync.WaitGroup
	inflight sync.WaitGroup
	abort    context.Context // cancelled when Shutdown gives up waiting
	cancel   context.CancelFunc
	waiting  atomic.Int64 // the consumer's lag at the last look
	closed   atomic.Bool
}

// NewQueue starts a shared queue over s: it creates the work stream and
// the durable consumer if needed, schedules entries that lack a work
// message, and starts fetching. Shutdown does not close s.
func NewQueue(ctx context.Context, s *Store, cfg QueueConfig) (*Queue, error) {
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 1000
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 5 * time.Minute
	}
	d := cfg.Delivery
	if d.Workers <= 0 {
		d.Workers = 16
	}
	if d.MaxDepth == 0 {
		d.MaxDepth = 100000
	}
	if d.MaxMessageBytes <= 0 || d.MaxMessageBytes > s.cfg.MaxMessageBytes {
		d.MaxMessageBytes = s.cfg.MaxMessageBytes
	}
	if d.Logger == nil {
		d.Logger = s.cfg.Logger
	}
	if d.Metrics == nil {
		d.Metrics = s.cfg.Metrics
	}
	d.Metrics = filter.OrNop(d.Metrics)
	q := &Queue{s: s, cfg: cfg, dcfg: d, wsubj: s.cfg.Name + ".work.", slots: make(chan struct{}, d.Workers), stop: make(chan struct{})}
	q.abort, q.cancel = context.WithCancel(context.Background())
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if q.work, err = s.js.CreateOrUpdateStream(octx, jetstream.StreamConfig{
		Name: s.cfg.Name + "_WORK", Subjects: []string{q.wsubj + ">"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		// One work message per ID: scheduling twice is a no-op.
		MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
	}); err != nil {
		return nil, s.wrap("work stream", err)
	}
	if q.cons, err = q.work.CreateOrUpdateConsumer(octx, jetstream.ConsumerConfig{
		Durable: "delivery", AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait,
		MaxDeliver: cfg.MaxDeliver, MaxAckPending: 20000, Replicas: s.cfg.Replicas,
	}); err != nil {
		return nil, s.wrap("delivery consumer", err)
	}
	if err := q.sweep(octx); err != nil {
		return nil, err
	}
	q.lag(octx)
	q.loops.Add(2)
	go q.sweepLoop()
	if d.Deliverer == nil {
		// A producer only: it accepts mail, the other processes deliver.
		q.loops.Done()
		return q, nil
	}
	go q.fetchLoop()
	return q, nil
}

// newID mirrors the queue's IDs: Unix nanoseconds in hex and 16 hex
// digits of randomness, sortable by age, unique across processes.
func newID(now time.Time) queue.ID {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return queue.ID(strconv.FormatInt(now.UnixNano(), 16) + hex.EncodeToString(r[:]))
}

// Enqueue stores a message and schedules it; it returns when both are
// durable (see the package comment for what that means on JetStream).
// Errors are the local queue's: queue.ErrNoRecipients, *queue.BusyError,
// *filter.LimitError; queue.Reply maps them to SMTP replies.
func (q *Queue) Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (queue.ID, error) {
	if len(env.RcptTo) == 0 {
		return "", queue.ErrNoRecipients
	}
	if q.closed.Load() {
		return "", queue.ErrClosed
	}
	if w := q.waiting.Load(); q.dcfg.MaxDepth > 0 && w >= int64(q.dcfg.MaxDepth) {
		q.dcfg.Metrics.Add("portcullis_queue_busy_total", 1, "reason", string(queue.BusyDepth))
		return "", &queue.BusyError{Reason: queue.BusyDepth, Detail: fmt.Sprintf("%d waiting >= %d", w, q.dcfg.MaxDepth)}
	}
	b, err := io.ReadAll(io.LimitReader(body, q.dcfg.MaxMessageBytes+1))
	if err != nil {
		return "", fmt.Errorf("jetstream: reading message: %w", err)
	}
	if int64(len(b)) > q.dcfg.MaxMessageBytes {
		return "", &filter.LimitError{Limit: filter.LimitMessageBytes, Max: q.dcfg.MaxMessageBytes}
	}
	now := time.Now()
	env.RcptTo = append([]string(nil), env.RcptTo...)
	e := queue.Entry{ID: newID(now), Envelope: env, Size: int64(len(b)), Created: now, NextAttempt: now}
	if err := q.s.Put(ctx, e, b); err != nil {
		q.dcfg.Metrics.Add("portcullis_queue_enqueue_errors_total", 1)
		return "", err
	}
	// A failure here leaves a durable entry without a work message: the
	// sweep schedules it; the sender, told to retry, may cause a duplicate.
	if err := q.schedule(ctx, e.ID); err != nil {
		q.dcfg.Metrics.Add("portcullis_queue_enqueue_errors_total", 1)
		return "", err
	}
	q.dcfg.Metrics.Add("portcullis_queue_enqueued_total", 1)
	return e.ID, nil
}

// schedule publishes the work message of an entry; one that already
// exists is left as it is.
func (q *Queue) schedule(ctx context.Context, id queue.ID) error {
	ctx, cancel, err := q.s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = q.s.js.Publish(ctx, q.wsubj+string(id), nil)
	var ae *jetstream.APIError
	if errors.As(err, &ae) && ae.ErrorCode == errCodeMaxMsgsPerSubject {
		return nil
	}
	if err != nil {
		return q.s.wrap("schedule "+string(id), err)
	}
	return nil
}

// Release puts a held entry back in the shared queue, due now, with its
// crash count reset.
func (q *Queue) Release(ctx context.Context, id queue.ID) error {
	octx, cancel, err := q.s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	e, _, _, err := q.s.get(octx, id)
	if err != nil {
		return err
	}
	if e.State == queue.Held {
		e.State, e.Crashes, e.Inflight, e.NextAttempt = queue.Queued, 0, false, time.Now()
		if err := q.s.Update(octx, e); err != nil {
			return err
		}
	}
	return q.schedule(ctx, id)
}

// sweep schedules every queued entry; those with a work message already
// are unchanged.
func (q *Queue) sweep(ctx context.Context) error {
	es, err := q.s.Entries(ctx)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.State != queue.Queued {
			continue
		}
		if err := q.schedule(ctx, e.ID); err != nil {
			return err
		}
	}
	return nil
}

// sweepLoop schedules orphaned entries and refreshes the lag gauges.
func (q *Queue) sweepLoop() {
	defer q.loops.Done()
	t := time.NewTicker(q.cfg.SweepInterval)
	defer t.Stop()
	lag := time.NewTicker(2 * time.Second)
	defer lag.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-lag.C:
			ctx, cancel := context.WithTimeout(q.abort, 5*time.Second)
			q.lag(ctx)
			cancel()
		case <-t.C:
			if err := q.sweep(q.abort); err != nil {
				q.dcfg.Logger.Warn("jetstream: sweep failed", "err", err)
			}
		}
	}
}

// Lag is the state of the shared delivery consumer.
type Lag struct {
	Waiting    uint64 // work messages not yet handed to any process
	InDelivery int    // handed out and not yet acknowledged
}

// Lag asks the server for the consumer's lag; it is also exported as the
// portcullis_jetstream_consumer_lag and _ack_pending gauges.
func (q *Queue) Lag(ctx context.Context) (Lag, error) {
	ctx, cancel, err := q.s.op(ctx)
	if err != nil {
		return Lag{}, err
	}
	defer cancel()
	info, err := q.cons.Info(ctx)
	if err != nil {
		return Lag{}, q.s.wrap("consumer info", err)
	}
	return Lag{Waiting: info.NumPending, InDelivery: info.NumAckPending}, nil
}

func (q *Queue) lag(ctx context.Context) {
	l, err := q.Lag(ctx)
	if err != nil {
		return
	}
	q.waiting.Store(int64(l.Waiting) + int64(l.InDelivery))
	q.dcfg.Metrics.Set("portcullis_jetstream_consumer_lag", float64(l.Waiting))
	q.dcfg.Metrics.Set("portcullis_jetstream_consumer_ack_pending", float64(l.InDelivery))
	q.dcfg.Metrics.Set("portcullis_queue_depth", float64(l.Waiting)+float64(l.InDelivery))
}

// fetchLoop claims work messages as delivery slots free up.
func (q *Queue) fetchLoop() {
	defer q.loops.Done()
	idle := true
	for {
		select {
		case <-q.stop:
			return
		case q.slots <- struct{}{}:
		}
		n := 1
		for !idle && n < cap(q.slots) {
			select {
			case q.slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		// While messages flow, take what is there without waiting; when
		// none were, wait up to a second for the next one (Fetch returns
		// as soon as it has n messages).
		var batch jetstream.MessageBatch
		var err error
		if idle {
			batch, err = q.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		} else {
			batch, err = q.cons.FetchNoWait(n)
		}
		got := 0
		if err == nil {
			for m := range batch.Messages() {
				got++
				q.inflight.Add(1)
				go q.handle(m)
			}
			err = batch.Error()
		}
		for range n - got {
			<-q.slots
		}
		idle = got == 0
		if err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			if q.closed.Load() {
				return
			}
			q.dcfg.Logger.Warn("jetstream: fetching work failed", "err", err)
			select {
			case <-q.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// handle delivers one claimed message. The attempt itself runs in a
// queue.Queue over a store that holds only the claimed entry, so retries,
// bounces, the maximum lifetime and the poison guard are exactly the
// local queue's; the outcome it records decides the JetStream answer.
func (q *Queue) handle(m jetstream.Msg) {
	defer func() {
		<-q.slots
		q.inflight.Done()
	}()
	ctx := q.abort
	id := queue.ID(strings.TrimPrefix(m.Subject(), q.wsubj))
	log := q.dcfg.Logger.With("id", id)
	md, err := m.Metadata()
	if err != nil {
		log.Error("jetstream: work message without metadata", "err", err)
		_ = m.NakWithDelay(q.dcfg.RetryBase)
		return
	}
	octx, cancel := context.WithTimeout(ctx, q.s.cfg.Timeout)
	e, _, _, err := q.s.get(octx, id)
	cancel()
	switch {
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, queue.ErrCorrupt):
		// Delivered and removed, removed by an operator, or moved aside.
		_ = m.DoubleAck(ctx)
		return
	case err != nil:
		log.Warn("jetstream: reading a claimed entry failed; retrying", "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	case e.State == queue.Held:
		_ = m.Term()
		return
	}
	if wait := time.Until(e.NextAttempt); wait > time.Second {
		_ = m.NakWithDelay(wait) // scheduled again early (a sweep): not due yet
		return
	}
	cs := &claimStore{Store: q.s, q: q, id: id, entry: e, done: make(chan struct{})}
	d := q.dcfg
	d.Workers = 1
	d.MaxDepth = -1
	d.Metrics = claimMetrics{d.Metrics}
	d.Logger = slog.New(claimLog{d.Logger.Handler()}).With("claim", md.NumDelivered)
	d.Spool = queue.SpoolConfig{}
	lq, err := queue.New(cs, d)
	if err != nil {
		log.Warn("jetstream: starting the attempt failed; retrying", "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	heartbeat := time.NewTicker(q.cfg.AckWait / 3)
	poll := time.NewTicker(20 * time.Millisecond)
wait:
	for {
		select {
		case <-cs.done:
			break wait
		case <-heartbeat.C:
			_ = m.InProgress() // renew the claim
		case <-poll.C:
			if lq.Len() == 0 { // dropped without a store call: moved aside as corrupt
				cs.finish(outcomeGone, queue.Entry{})
				break wait
			}
		case <-ctx.Done():
			break wait
		}
	}
	heartbeat.Stop()
	poll.Stop()
	_ = lq.Shutdown(ctx) // cancels an attempt still running after an abort; its outcome is recorded
	out, final := cs.result()
	switch out {
	case outcomeGone:
		_ = m.DoubleAck(context.WithoutCancel(ctx))
	case outcomeFailed:
		_ = m.NakWithDelay(max(d.RetryBase, time.Second))
	case outcomeWaiting:
		// Aborted before an attempt finished: another process takes over
		// after AckWait, or this one after a restart.
		_ = m.Nak()
	case outcomeRecorded:
		if final.State == queue.Held {
			_ = m.Term()
			return
		}
		if md.NumDelivered >= uint64(q.cfg.MaxDeliver) {
			final.State = queue.Held
			final.LastError = fmt.Sprintf("handed out %d times (MaxDeliver): %s", md.NumDelivered, final.LastError)
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.s.cfg.Timeout)
			err := q.s.Update(wctx, final)
			cancel()
			if err != nil {
				log.Error("jetstream: holding a message at MaxDeliver failed", "err", err)
			}
			d.Metrics.Add("portcullis_queue_held_total", 1, "reason", "max-deliver")
			log.Error("jetstream: message held: MaxDeliver reached", "deliveries", md.NumDelivered)
			_ = m.Term()
			return
		}
		_ = m.NakWithDelay(max(time.Until(final.NextAttempt), 0))
	}
}

// claimMetrics keeps the one-entry queue's gauges (depth 1, then 0) out
// of the shared queue's, which come from the consumer.
type claimMetrics struct{ filter.Metrics }

func (m claimMetrics) Set(name string, v float64, labels ...string) {
	if name == "portcullis_queue_depth" || name == "portcullis_queue_oldest_seconds" {
		return
	}
	m.Metrics.Set(name, v, labels...)
}

// claimLog drops the one-entry queue's start-up line, which would
// otherwise be logged once per delivered message.
type claimLog struct{ slog.Handler }

func (h claimLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "queue: recovered" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h claimLog) WithAttrs(as []slog.Attr) slog.Handler { return claimLog{h.Handler.WithAttrs(as)} }
func (h claimLog) WithGroup(g string) slog.Handler       { return claimLog{h.Handler.WithGroup(g)} }

type outcome int

const (
	outcomeWaiting  outcome = iota // no outcome yet
	outcomeGone                    // removed: delivered, bounced, or moved aside
	outcomeRecorded                // an attempt (or recovery) recorded a new state
	outcomeFailed                  // the store refused to record the attempt
)

// claimStore is the Store of the one-entry queue that runs an attempt of a
// claimed message: reads and writes of the claimed entry go to the shared
// store, new entries (bounces) are stored and scheduled in the shared
// queue, and everything else is refused, so the one-entry queue never
// delivers anything but one attempt of its entry.
type claimStore struct {
	*Store
	q     *Queue
	id    queue.ID
	entry queue.Entry

	mu      sync.Mutex
	started bool // an attempt was recorded as in flight
	out     outcome
	final   queue.Entry
	done    chan struct{}
}

var errNotClaimed = errors.New("jetstream: not part of this claim")

func (c *claimStore) finish(o outcome, e queue.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out != outcomeWaiting {
		return
	}
	c.out, c.final = o, e
	close(c.done)
}

func (c *claimStore) result() (outcome, queue.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out, c.final
}

func (c *claimStore) Entries(context.Context) ([]queue.Entry, error) {
	return []queue.Entry{c.entry}, nil
}

func (c *claimStore) Put(ctx context.Context, e queue.Entry, body []byte) error {
	if err := c.Store.Put(ctx, e, body); err != nil {
		return err
	}
	return c.q.schedule(ctx, e.ID)
}

func (c *claimStore) Update(ctx context.Context, e queue.Entry) error {
	if e.ID != c.id {
		return errNotClaimed
	}
	c.mu.Lock()
	over := c.out != outcomeWaiting
	second := e.Inflight && c.started
	c.mu.Unlock()
	if over || second {
		return errNotClaimed // one attempt per claim
	}
	if err := c.Store.Update(ctx, e); err != nil {
		if e.Inflight {
			c.finish(outcomeFailed, e)
		}
		return err
	}
	switch {
	case e.Inflight:
		c.mu.Lock()
		c.started = true
		c.mu.Unlock()
	case c.startedAttempt() || e.State == queue.Held:
		c.finish(outcomeRecorded, e)
	}
	return nil
}

func (c *claimStore) startedAttempt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

func (c *claimStore) Remove(ctx context.Context, id queue.ID) error {
	if id != c.id {
		return errNotClaimed
	}
	err := c.Store.Remove(ctx, id)
	if err == nil || errors.Is(err, queue.ErrNotFound) {
		c.finish(outcomeGone, queue.Entry{})
	}
	return err
}

func (c *claimStore) Body(ctx context.Context, id queue.ID) (queue.Body, error) {
	if id != c.id {
		return nil, errNotClaimed
	}
	return c.Store.Body(ctx, id)
}

// Close does not close the shared store.
func (c *claimStore) Close() error { return nil }

// Shutdown stops claiming messages and waits for the deliveries in
// flight; when ctx ends first they are cancelled (their outcome is still
// recorded) and ctx's error is returned. The Store stays open.
func (q *Queue) Shutdown(ctx context.Context) error {
	if q.closed.Swap(true) {
		return nil
	}
	q.stopOnce.Do(func() { close(q.stop) })
	q.loops.Wait()
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
	return err
}
