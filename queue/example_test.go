package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

// A gateway enqueues after its filters accept a message and answers the
// SMTP client from the result: 250 only once the message is durable.
func Example() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)

	delivered := make(chan string, 1)
	q, err := queue.Open(dir, queue.Config{
		MinFreeBytes: 1, // the example runs anywhere
		Deliverer: queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
			b, _ := io.ReadAll(m.Body())
			delivered <- fmt.Sprintf("to %v: %q", m.To, b)
			return make([]error, len(m.To)) // all delivered
		}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	env := filter.Envelope{MailFrom: "alice@example.org", RcptTo: []string{"bob@example.net"}}
	if _, err := q.Enqueue(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		fmt.Println("answer", filter.ErrorReply(err).Code)
		return
	}
	fmt.Println("answer 250")
	fmt.Println(<-delivered)
	// Output:
	// answer 250
	// to [bob@example.net]: "Subject: hi\r\n\r\nhello\r\n"
}

// Backpressure turns into a 4xx, so the sender keeps the mail: the
// queue's errors know their reply, and filter.ErrorReply finds it.
func ExampleBusyError_Reply() {
	err := fmt.Errorf("enqueue: %w", &queue.BusyError{Reason: queue.BusyDisk, Detail: "10 MB free"})
	r := filter.ErrorReply(err)
	fmt.Println(errors.Is(err, queue.ErrBusy), r.Code, r.Enhanced)
	fmt.Println(filter.ErrorReply(&queue.BusyError{Reason: queue.BusyDepth}))
	// Output:
	// true 452 4.3.1
	// 451 4.3.2 Queue busy, try again later
}

// A backend that schedules attempts itself runs each one through an
// Attempter: the same retries, bounces and poison guard as the Queue.
func ExampleAttempter() {
	dir, _ := os.MkdirTemp("", "attempt")
	defer os.RemoveAll(dir)
	store, err := queue.OpenSpool(dir, queue.SpoolConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	a, err := queue.NewAttempter(store, queue.Config{
		Deliverer: queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
			return make([]error, len(m.To)) // all delivered
		}),
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	e := queue.Entry{ID: "example-1", Envelope: filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.net"}},
		Size: 5, Created: time.Now(), NextAttempt: time.Now()}
	if err := store.Put(context.Background(), e, []byte("hello")); err != nil {
		fmt.Println(err)
		return
	}
	out := a.Attempt(context.Background(), e)
	left, _ := store.Entries(context.Background())
	fmt.Println("gone:", out.Gone, "err:", out.Err, "left:", len(left))
	// Output: gone: true err: <nil> left: 0
}
