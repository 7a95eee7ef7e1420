package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	// Delivery is the delivery configuration: Deliverer (or StoreOnly,
	// which makes this process a producer that only enqueues), RetryBase,
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
	att      *queue.Attempter // nil for a producer
	abort    context.Context  // cancelled when Shutdown gives up waiting
	cancel   context.CancelFunc
	waiting  atomic.Int64 // the consumer's lag at the last look
	m        *mirror      // every entry, as the watcher last saw them
	closed   atomic.Bool
}

// NewQueue starts a shared queue over s: it creates the work stream and
// the durable consumer if needed, schedules entries that lack a work
// message, and starts fetching. Shutdown does not close s.
func NewQueue(ctx context.Context, s *Store, cfg QueueConfig) (*Queue, error) {
	if cfg.Delivery.Deliverer == nil && !cfg.Delivery.StoreOnly {
		return nil, queue.ErrNoDeliverer
	}
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
		d.Workers = queue.DefaultWorkers
	}
	if d.MaxDepth == 0 {
		d.MaxDepth = queue.DefaultMaxDepth
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
	q := &Queue{s: s, cfg: cfg, dcfg: d, wsubj: s.cfg.Name + ".work.", slots: make(chan struct{}, d.Workers), stop: make(chan struct{}), m: newMirror()}
	q.abort, q.cancel = context.WithCancel(context.Background())
	if d.Deliverer != nil {
		var err error
		if q.att, err = queue.NewAttempter(s, d, q.put); err != nil {
			return nil, err
		}
	}
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
	q.loops.Add(3)
	go q.sweepLoop()
	go q.mirrorLoop()
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
// *filter.LimitError; filter.ErrorReply maps them to SMTP replies.
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
	id, err := q.put(ctx, env, b)
	if err != nil {
		q.dcfg.Metrics.Add("portcullis_queue_enqueue_errors_total", 1)
		return "", err
	}
	q.dcfg.Metrics.Add("portcullis_queue_enqueued_total", 1)
	q.dcfg.Logger.InfoContext(ctx, "queue: enqueued", "id", id, filter.LogMessageID, filter.MessageIDOf(ctx),
		"from", env.MailFrom, "rcpts", len(env.RcptTo), "size", len(b))
	return id, nil
}

// put stores a message and schedules it, without backpressure (bounces
// use it too). A failure to schedule leaves a durable entry without a
// work message: the sweep schedules it; the sender, told to retry, may
// cause a duplicate.
func (q *Queue) put(ctx context.Context, env filter.Envelope, body []byte) (queue.ID, error) {
	now := time.Now()
	env.RcptTo = append([]string(nil), env.RcptTo...)
	e := queue.Entry{ID: newID(now), Envelope: env, Size: int64(len(body)), Created: now, NextAttempt: now}
	if err := q.s.Put(ctx, e, body); err != nil {
		return "", err
	}
	return e.ID, q.schedule(ctx, e.ID)
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

// handle delivers one claimed message: one queue.Attempter attempt, so
// retries, bounces, the maximum lifetime and the poison guard are exactly
// the local queue's; the outcome it records decides the JetStream answer.
// The claim is renewed while the attempt runs.
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
		log.ErrorContext(ctx, "jetstream: work message without metadata", "err", err)
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
		log.WarnContext(ctx, "jetstream: reading a claimed entry failed; retrying", "err", err)
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
	done := make(chan queue.Outcome, 1)
	go func() { done <- q.att.Attempt(ctx, e) }()
	heartbeat := time.NewTicker(q.cfg.AckWait / 3)
	var out queue.Outcome
wait:
	for {
		select {
		case out = <-done:
			break wait
		case <-heartbeat.C:
			_ = m.InProgress() // renew the claim
		}
	}
	heartbeat.Stop()
	actx := context.WithoutCancel(ctx)
	switch {
	case out.Gone:
		_ = m.DoubleAck(actx)
	case out.Err != nil:
		// The store refused to record the attempt or its outcome.
		_ = m.NakWithDelay(max(q.dcfg.RetryBase, time.Second))
	case out.Entry.State == queue.Held:
		_ = m.Term()
	case md.NumDelivered >= uint64(q.cfg.MaxDeliver):
		final := out.Entry
		final.State = queue.Held
		final.LastError = fmt.Sprintf("handed out %d times (MaxDeliver): %s", md.NumDelivered, final.LastError)
		wctx, cancel := context.WithTimeout(actx, q.s.cfg.Timeout)
		err := q.s.Update(wctx, final)
		cancel()
		if err != nil {
			log.ErrorContext(ctx, "jetstream: holding a message at MaxDeliver failed", "err", err)
		}
		q.dcfg.Metrics.Add("portcullis_queue_held_total", 1, "reason", "max-deliver")
		log.ErrorContext(ctx, "jetstream: message held: MaxDeliver reached", "deliveries", md.NumDelivered)
		_ = m.Term()
	default:
		_ = m.NakWithDelay(max(time.Until(out.Entry.NextAttempt), 0))
	}
}

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
