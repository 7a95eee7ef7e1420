package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// PutFunc stores a new message and schedules it for delivery, without
// backpressure: the Attempter queues bounces through it.
type PutFunc func(ctx context.Context, env filter.Envelope, body []byte) (ID, error)

// Attempter runs single delivery attempts of stored entries with the
// queue's semantics: the attempt is persisted (Attempts+1, Inflight)
// before the Deliverer runs; a panic is recovered and counts a crash, as
// does an entry found Inflight (its process died); after MaxCrashes the
// entry is held (the poison guard); each recipient is delivered, retried
// with backoff (temporary) or bounced (permanent, or pending past
// MaxLifetime; BouncePolicy Hold keeps a dead letter instead); and the
// outcome is recorded in the store before Attempt returns.
//
// A *Queue runs one for its scheduler. A backend that schedules attempts
// itself (queue/jetstream claims them from a shared work queue) calls
// Attempt once per claimed entry and acts on the Outcome. It is safe for
// concurrent use on different entries; one entry must not be attempted
// twice at once.
type Attempter struct {
	store Store
	cfg   Config
	put   PutFunc
}

// NewAttempter returns an Attempter over a store. cfg is a queue Config
// (its defaults apply); cfg.Deliverer is required (ErrNoDeliverer). put
// queues bounces; nil means store.Put alone, for a store whose entries
// are found by a scan.
func NewAttempter(store Store, cfg Config, put PutFunc) (*Attempter, error) {
	if cfg.Deliverer == nil {
		return nil, ErrNoDeliverer
	}
	cfg = cfg.withDefaults()
	if put == nil {
		put = func(ctx context.Context, env filter.Envelope, body []byte) (ID, error) {
			e := newEntry(env, body, time.Now())
			return e.ID, store.Put(ctx, e, body)
		}
	}
	return &Attempter{store: store, cfg: cfg, put: put}, nil
}

// Outcome is what one attempt did to an entry.
type Outcome struct {
	// Entry is the entry as recorded after the attempt: Queued with the
	// next attempt due at NextAttempt, or Held. Zero when Gone.
	Entry Entry
	// Gone reports that the entry left the store: every recipient was
	// delivered or bounced, or its body was corrupt and moved aside.
	Gone bool
	// Err is the store's refusal to record the attempt (then nothing was
	// delivered and Entry is due again after RetryBase) or its outcome
	// (Entry is the state that was meant to be recorded).
	Err error
}

// Attempt runs one delivery attempt of e, which the caller read from the
// store. ctx bounds the delivery; the outcome is recorded even when ctx
// ends first (the attempt then fails temporarily). Attempt logs one
// result line per attempt ("queue: delivery attempt": id, attempt,
// recipients, result, host, reply, duration).
func (a *Attempter) Attempt(ctx context.Context, e Entry) Outcome {
	e = e.clone()
	rec := context.WithoutCancel(ctx) // a known outcome must be recorded
	if e.Inflight {
		e.Inflight = false
		e.Crashes++
		e.LastError = "process ended during delivery attempt"
		if a.poison(ctx, &e) {
			return a.persist(rec, e, a.backoff(e.Attempts))
		}
	}
	pending := e.Pending()
	if len(pending) == 0 {
		return a.remove(rec, e)
	}
	e.Attempts++
	e.Inflight = true
	if err := a.record(ctx, e); err != nil {
		a.cfg.Logger.ErrorContext(ctx, "queue: persisting attempt failed; not delivering", "id", e.ID, "err", err)
		e.Attempts--
		e.Inflight = false
		e.NextAttempt = time.Now().Add(a.cfg.RetryBase)
		return Outcome{Entry: e, Err: err}
	}
	body, err := a.store.Body(ctx, e.ID)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			// The store moved it aside.
			a.cfg.Logger.ErrorContext(ctx, "queue: corrupt message moved aside", "id", e.ID, "err", err)
			return Outcome{Gone: true}
		}
		e.Inflight = false
		e.LastError = clip(err.Error())
		return a.persist(rec, e, a.backoff(e.Attempts))
	}
	m := &Outgoing{ID: e.ID, From: e.Envelope.MailFrom, To: pending, Size: e.Size, Attempts: e.Attempts, body: body}
	start := time.Now()
	results, panicked := a.deliver(ctx, m)
	body.Close()
	elapsed := time.Since(start)
	a.cfg.Metrics.Observe("portcullis_queue_attempt_seconds", elapsed.Seconds())
	e.Inflight = false
	if panicked != nil {
		e.Crashes++
		e.LastError = clip(panicked.Error())
		a.cfg.Metrics.Add("portcullis_queue_panics_total", 1)
		a.logAttempt(ctx, e, pending, "crashed", panicked, elapsed)
		a.poison(ctx, &e)
		return a.persist(rec, e, a.backoff(e.Attempts))
	}
	return a.outcome(rec, e, pending, results, elapsed)
}

// poison holds an entry whose attempts crashed MaxCrashes times.
func (a *Attempter) poison(ctx context.Context, e *Entry) bool {
	if e.Crashes < a.cfg.MaxCrashes {
		return false
	}
	e.State = Held
	a.cfg.Metrics.Add("portcullis_queue_held_total", 1, "reason", "poison")
	a.cfg.Logger.ErrorContext(ctx, "queue: message held: delivery crashed repeatedly", "id", e.ID, "crashes", e.Crashes)
	return true
}

// deliver calls the Deliverer, turning a panic into an error.
func (a *Attempter) deliver(ctx context.Context, m *Outgoing) (results []error, panicked error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	results = a.cfg.Deliverer.Deliver(ctx, m)
	if len(results) != len(m.To) {
		return all(len(m.To), fmt.Errorf("queue: deliverer returned %d results for %d recipients", len(results), len(m.To))), nil
	}
	return results, nil
}

// outcome records what an attempt achieved.
func (a *Attempter) outcome(ctx context.Context, e Entry, pending []string, results []error, elapsed time.Duration) Outcome {
	now := time.Now()
	expired := now.Sub(e.Created) > a.cfg.MaxLifetime
	var failed []failure
	var firstErr error
	delivered, deferred := 0, 0
	for i, rcpt := range pending {
		err := results[i]
		if err != nil && firstErr == nil {
			firstErr = err
		}
		switch {
		case err == nil:
			delivered++
			e.Done = append(e.Done, rcpt)
			a.cfg.Metrics.Add("portcullis_queue_delivered_total", 1)
		case Classify(err) == Permanent:
			failed = append(failed, failure{rcpt: rcpt, err: err})
		case expired:
			failed = append(failed, failure{rcpt: rcpt, err: err, expired: true})
		default:
			deferred++
			e.LastError = clip(err.Error())
			if len(pending) > 1 { // the result line says it for one recipient
				a.cfg.Logger.InfoContext(ctx, "queue: delivery deferred", "id", e.ID, "rcpt", rcpt, "attempt", e.Attempts, "err", err, "timeout", isTimeout(err))
			}
		}
	}
	a.logAttempt(ctx, e, pending, result(delivered, deferred, len(failed)), firstErr, elapsed)
	if len(failed) > 0 {
		if a.cfg.BouncePolicy == Hold {
			e.State = Held
			e.LastError = clip(failed[0].err.Error())
			a.cfg.Metrics.Add("portcullis_queue_held_total", 1, "reason", "dead-letter")
			a.cfg.Logger.WarnContext(ctx, "queue: message held as dead letter", "id", e.ID, "err", e.LastError)
		} else if err := a.bounce(ctx, e, failed, now); err != nil {
			// The bounce could not be queued: keep the recipients and try
			// again later rather than drop the news.
			a.cfg.Logger.ErrorContext(ctx, "queue: queueing bounce failed; will retry", "id", e.ID, "err", err)
			deferred += len(failed)
		} else {
			for _, f := range failed {
				e.Done = append(e.Done, f.rcpt)
			}
		}
	}
	if deferred > 0 && e.State == Queued {
		a.cfg.Metrics.Add("portcullis_queue_retries_total", 1)
	}
	return a.persist(ctx, e, a.backoff(e.Attempts))
}

// result names an attempt's result for its log line.
func result(delivered, deferred, failed int) string {
	switch {
	case deferred == 0 && failed == 0:
		return "delivered"
	case delivered == 0 && failed == 0:
		return "deferred"
	case delivered == 0 && deferred == 0:
		return "failed"
	}
	return "partial"
}

// logAttempt writes the one result line of a delivery attempt, in the
// manner of mox: enough to follow one message through the log by its id.
// With one recipient it names it and says whether the failure was a
// timeout; with more, a "queue: delivery deferred" line per deferred
// recipient does.
func (a *Attempter) logAttempt(ctx context.Context, e Entry, pending []string, res string, err error, elapsed time.Duration) {
	attrs := []slog.Attr{
		slog.String("id", string(e.ID)), slog.Int("attempt", e.Attempts), slog.Int("rcpts", len(pending)),
		slog.String("result", res), slog.Duration("duration", elapsed),
	}
	if len(pending) == 1 {
		attrs = append(attrs, slog.String("rcpt", pending[0]))
		if err != nil && isTimeout(err) {
			attrs = append(attrs, slog.Bool("timeout", true))
		}
	}
	var re RemoteError
	if errors.As(err, &re) {
		attrs = append(attrs, slog.String("host", re.RemoteHost()), slog.String("reply", diagnostic(re.RemoteReply())))
	} else if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	level := slog.LevelInfo
	switch res {
	case "delivered":
	case "crashed":
		level = slog.LevelError
	default:
		level = slog.LevelWarn
	}
	a.cfg.Logger.LogAttrs(ctx, level, "queue: delivery attempt", attrs...)
}

// persist records an entry's new state: removed when every recipient is
// done, due again after delay otherwise.
func (a *Attempter) persist(ctx context.Context, e Entry, delay time.Duration) Outcome {
	if len(e.Pending()) == 0 {
		return a.remove(ctx, e)
	}
	e.NextAttempt = time.Now().Add(delay)
	update := a.store.Update
	if e.State == Queued {
		update = a.record // a deferral; a hold stays durable before it returns
	}
	if err := update(ctx, e); err != nil {
		a.cfg.Logger.ErrorContext(ctx, "queue: persisting outcome failed", "id", e.ID, "err", err)
		return Outcome{Entry: e, Err: err}
	}
	return Outcome{Entry: e}
}

// record writes attempt bookkeeping through the store's UpdateWritten
// when it has one (WrittenUpdater: durable against a process death, the
// one the poison guard counts), Update otherwise.
func (a *Attempter) record(ctx context.Context, e Entry) error {
	if w, ok := a.store.(WrittenUpdater); ok {
		return w.UpdateWritten(ctx, e)
	}
	return a.store.Update(ctx, e)
}

// remove removes a finished entry.
func (a *Attempter) remove(ctx context.Context, e Entry) Outcome {
	if err := a.store.Remove(ctx, e.ID); err != nil && !errors.Is(err, ErrNotFound) {
		// Still durable in the store: it will be delivered again after a
		// restart (a duplicate, never a loss).
		a.cfg.Logger.ErrorContext(ctx, "queue: removing delivered message failed", "id", e.ID, "err", err)
		return Outcome{Gone: true, Err: err}
	}
	return Outcome{Gone: true}
}

// backoff returns the delay before attempt n+1: RetryBase doubled per
// attempt, capped at RetryMax, with jitter in [d/2, d).
func (a *Attempter) backoff(n int) time.Duration {
	d := a.cfg.RetryBase
	for i := 1; i < n && d < a.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}
