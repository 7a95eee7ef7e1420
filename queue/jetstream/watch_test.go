package jetstream

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/queue"
)

// TestSyncAfterChangeBeforeWatch stores an entry between the moment a
// new view reads the stream's last sequence and the start of its watch:
// the entry arrives among the watch's initial values, and Sync must not
// wait for a change after it.
func TestSyncAfterChangeBeforeWatch(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	open := func() *Store {
		s, err := Open(ctx, srv.URL, Config{Name: "watchrace"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	newQueue := func(s *Store) *Queue {
		q, err := NewQueue(ctx, s, QueueConfig{Delivery: queue.Config{StoreOnly: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			q.Shutdown(ctx) //nolint:errcheck // the test is over
		})
		return q
	}
	a, b := open(), open()
	qa := newQueue(a)
	var once sync.Once
	enqueued := make(chan error, 1)
	hook := func(s *Store) {
		if s != b {
			return
		}
		once.Do(func() {
			_, err := qa.Enqueue(ctx, filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.net"}},
				strings.NewReader("Subject: x\r\n\r\nx\r\n"))
			enqueued <- err
		})
	}
	watchStarting.Store(&hook)
	defer watchStarting.Store(nil)
	qb := newQueue(b)
	if err := <-enqueued; err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := qb.Sync(sctx); err != nil {
		t.Fatalf("Sync after a change among the initial values: %v", err)
	}
	if n := qb.Len(); n != 1 {
		t.Fatalf("view holds %d entries, want 1", n)
	}
}
