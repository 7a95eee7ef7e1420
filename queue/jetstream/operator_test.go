package jetstream_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
	"github.com/portcullis-mail/portcullis/relay"
)

func syncQueue(t *testing.T, q *jetstream.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	if err := q.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func ids(es []queue.Entry) []queue.ID {
	var out []queue.ID
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// Every process sees the whole shared queue: what one enqueues, another
// lists, counts and bounces; held entries are counted apart.
func TestSharedQueueEntriesAndBounce(t *testing.T) {
	srv := natstest.Start(t)
	name := freshName()
	a := startQueue(t, openStore(t, srv.URL, name), jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true}})
	sb := openStore(t, srv.URL, name)
	b := startQueue(t, sb, jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true, Hostname: "gw.test"}})
	var want []queue.ID
	for _, r := range []string{"r1@example.net", "r2@example.net", "r3@example.net"} {
		id, err := a.Enqueue(bg, testEnv(r), strings.NewReader(testMsg(r)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	syncQueue(t, b)
	if got := ids(b.Entries()); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("entries seen by the other process %v, want %v", got, want)
	}
	if b.Len() != 3 {
		t.Fatalf("Len %d, want 3", b.Len())
	}
	// Snapshots are copies.
	es := b.Entries()
	es[0].Envelope.RcptTo[0] = "changed@example.net"
	if e := b.Entries()[0]; e.Envelope.RcptTo[0] != "r1@example.net" {
		t.Fatalf("a snapshot shares its recipients: %v", e.Envelope.RcptTo)
	}

	// Held, as the poison guard leaves one.
	e := storeEntry(t, sb, want[2])
	e.State, e.Crashes = queue.Held, 3
	if err := sb.Update(bg, e); err != nil {
		t.Fatal(err)
	}
	syncQueue(t, a)
	st, err := a.Stats(bg)
	if err != nil || st.Entries != 3 || st.Held != 1 || st.Waiting != 3 {
		t.Fatalf("stats %+v %v, want 3 entries, 1 held, 3 work messages waiting", st, err)
	}

	// Bounced from the other process: gone everywhere, a DSN queued.
	if err := b.Bounce(bg, want[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Entry(want[0]); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Entry of the bounced one = %v, want ErrNotFound", err)
	}
	syncQueue(t, a)
	got := a.Entries()
	if len(got) != 3 || got[0].ID != want[1] || got[2].Envelope.RcptTo[0] != "sender@example.org" || got[2].Envelope.MailFrom != "" {
		t.Fatalf("after the bounce: %+v, want r2, r3 and the DSN to the sender", got)
	}
	if err := b.Bounce(bg, want[0]); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("second bounce = %v, want ErrNotFound", err)
	}
	if err := a.Retry(bg, "0123"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("retry of an unknown ID = %v, want ErrNotFound", err)
	}
}

// Retry makes a message waiting out a long backoff, or held, due now; one
// in delivery is refused with queue.ErrInFlight, by Retry and Bounce.
func TestSharedQueueOperatorRetry(t *testing.T) {
	srv := natstest.Start(t)
	s := openStore(t, srv.URL, freshName())
	delivered := make(chan string, 10)
	inside, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	tried := map[string]bool{}
	d := queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		out := make([]error, len(m.To))
		rcpt := m.To[0]
		mu.Lock()
		again := tried[rcpt]
		tried[rcpt] = true
		mu.Unlock()
		switch {
		case rcpt == "busy@example.net":
			close(inside)
			<-release
		case !again:
			for i := range out {
				out[i] = &relay.ReplyError{Host: "mx.test:25", Command: "RCPT", Reply: filter.Reply{Code: 451, Text: "later"}}
			}
			return out
		}
		delivered <- rcpt
		return out
	})
	q := startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: d, RetryBase: time.Hour, RetryMax: time.Hour}})
	// waitBackoff enqueues a message whose first attempt fails: due again
	// in an hour.
	waitBackoff := func(rcpt string) queue.ID {
		t.Helper()
		id, err := q.Enqueue(bg, testEnv(rcpt), strings.NewReader(testMsg(rcpt)))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the first attempt recorded", func() bool {
			e, err := q.Entry(id)
			return err == nil && e.Attempts == 1 && !e.Inflight
		})
		if e, _ := q.Entry(id); time.Until(e.NextAttempt) < 30*time.Minute {
			t.Fatalf("next attempt %v, want about an hour away", e.NextAttempt)
		}
		return id
	}
	wantDelivered := func(rcpt string) {
		t.Helper()
		select {
		case r := <-delivered:
			if r != rcpt {
				t.Fatalf("delivered %s, want %s", r, rcpt)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: a retried message was not delivered within 20 s", rcpt)
		}
	}

	slow := waitBackoff("slow@example.net")
	if err := q.Retry(bg, slow); err != nil {
		t.Fatal(err)
	}
	wantDelivered("slow@example.net")

	// Held (as the poison guard leaves one): released, crashes reset.
	held := waitBackoff("held@example.net")
	e := storeEntry(t, s, held)
	e.State, e.Crashes = queue.Held, 3
	if err := s.Update(bg, e); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(bg, held); err != nil {
		t.Fatal(err)
	}
	wantDelivered("held@example.net")

	busy, err := q.Enqueue(bg, testEnv("busy@example.net"), strings.NewReader(testMsg("busy")))
	if err != nil {
		t.Fatal(err)
	}
	<-inside
	eventually(t, "the attempt marked in flight", func() bool {
		e, err := q.Entry(busy)
		return err == nil && e.Inflight
	})
	if err := q.Retry(bg, busy); !errors.Is(err, queue.ErrInFlight) {
		t.Errorf("retry in delivery = %v, want ErrInFlight", err)
	}
	if err := q.Bounce(bg, busy); !errors.Is(err, queue.ErrInFlight) {
		t.Errorf("bounce in delivery = %v, want ErrInFlight", err)
	}
	close(release)
	wantDelivered("busy@example.net")
}

func storeEntry(t *testing.T, s *jetstream.Store, id queue.ID) queue.Entry {
	t.Helper()
	es, err := s.Entries(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("%s not in the store", id)
	return queue.Entry{}
}

// The view survives a restart of the server: the watcher starts again
// when the connection does, and what is enqueued or removed after it
// shows.
func TestSharedQueueViewAfterRestart(t *testing.T) {
	srv := natstest.Start(t)
	name := freshName()
	a := startQueue(t, openStore(t, srv.URL, name), jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true}})
	b := startQueue(t, openStore(t, srv.URL, name), jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true}})
	first, err := a.Enqueue(bg, testEnv(), strings.NewReader(testMsg("before")))
	if err != nil {
		t.Fatal(err)
	}
	syncQueue(t, b)
	srv.Stop()
	if got := ids(b.Entries()); len(got) != 1 || got[0] != first {
		t.Fatalf("while the server is down: %v, want what was last seen", got)
	}
	srv.Start()
	// The client reconnects on its own; a sender retries a 4xx.
	var second queue.ID
	eventually(t, "an enqueue after the restart", func() bool {
		second, err = a.Enqueue(bg, testEnv(), strings.NewReader(testMsg("after")))
		return err == nil
	})
	if err := b.Bounce(bg, first); err != nil {
		t.Fatal(err)
	}
	// The watcher starts again on the reconnection, not after its
	// consumer's heartbeats have been missed for long (about 20 s).
	ctx, cancel := context.WithTimeout(bg, 8*time.Second)
	defer cancel()
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("the view did not catch up within 8 s of the restart: %v", err)
	}
	got := b.Entries()
	if len(got) != 2 || got[0].ID != second || got[1].Envelope.MailFrom != "" {
		t.Fatalf("after the restart: %+v, want the new entry and the DSN", got)
	}
}
