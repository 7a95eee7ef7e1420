package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrOperatorBounce is matched by the failure a Bounce records for each
// recipient; its text is the DSN's diagnostic.
var ErrOperatorBounce = errors.New("queue: bounced by the operator")

// Entry returns a snapshot of one entry.
func (q *Queue) Entry(id ID) (Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.items[id]
	if it == nil {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return it.e.clone(), nil
}

// Retry makes an entry due now: a queued one is attempted at once
// instead of at its backoff time; a held one is released (its crash
// count reset) and attempted. An entry being delivered is refused with
// ErrInFlight.
func (q *Queue) Retry(ctx context.Context, id ID) error {
	it, err := q.claim(id)
	if err != nil {
		return err
	}
	e := it.e.clone()
	was := e.State
	e.NextAttempt = time.Now()
	if e.State == Held {
		e.State, e.Crashes = Queued, 0
	}
	if err := q.store.Update(ctx, e); err != nil {
		q.unclaim(it, it.e)
		return err
	}
	q.unclaim(it, e)
	q.poke()
	q.cfg.Logger.InfoContext(ctx, "queue: retry requested", "id", id, "state", was, "attempts", e.Attempts)
	return nil
}

// Bounce gives up on an entry's pending recipients now: a delivery status
// notification saying so (status 5.0.0, ErrOperatorBounce's text as the
// diagnostic) is queued to the envelope sender, unless the sender is
// null, and then the entry is removed. The bounce is durable before the
// entry goes, so a crash in between repeats the news and never loses it.
// Bounce applies whatever the BouncePolicy; an entry being delivered is
// refused with ErrInFlight.
func (q *Queue) Bounce(ctx context.Context, id ID) error {
	it, err := q.claim(id)
	if err != nil {
		return err
	}
	e := it.e.clone()
	if err := BounceEntry(ctx, q.store, q.cfg, q.put, e); err != nil {
		q.unclaim(it, it.e)
		return err
	}
	q.drop(it)
	return nil
}

// BounceEntry is the operator's bounce of an entry kept in store: a DSN
// for its pending recipients (status 5.0.0, ErrOperatorBounce's text as
// the diagnostic; none for a null sender) queued durably through put,
// then the entry removed from store. It is (*Queue).Bounce without the
// local schedule, for queues that keep their entries elsewhere
// (queue/jetstream); the caller makes sure no attempt of e is running.
// When the DSN is queued but the removal fails, the error is returned and
// the entry stays (and may bounce again).
func BounceEntry(ctx context.Context, store Store, cfg Config, put PutFunc, e Entry) error {
	cfg = cfg.withDefaults()
	var failed []failure
	for _, r := range e.Pending() {
		failed = append(failed, failure{rcpt: r, err: ErrOperatorBounce})
	}
	a := &Attempter{store: store, cfg: cfg, put: put}
	if len(failed) > 0 {
		if err := a.bounce(ctx, e, failed, time.Now()); err != nil {
			return fmt.Errorf("queue: queueing the bounce: %w", err)
		}
	}
	if err := store.Remove(ctx, e.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	cfg.Logger.WarnContext(ctx, "queue: bounced by the operator", "id", e.ID, "rcpts", len(failed), "state", e.State)
	return nil
}
