package queue_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

// printQueue is an Enqueuer that prints what it is given.
type printQueue struct{}

func (printQueue) Enqueue(_ context.Context, env filter.Envelope, body io.Reader) (queue.ID, error) {
	b, _ := io.ReadAll(body)
	fmt.Printf("queued for %v: %d bytes\n", env.RcptTo, len(b))
	return "q1", nil
}

// ExampleQuarantine holds a message an engine flagged, lists what that
// engine held, builds a recipient's digest and releases the message.
func ExampleQuarantine() {
	dir, err := os.MkdirTemp("", "quarantine-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := queue.OpenQuarantineDir(dir, queue.QuarantineDirConfig{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	q, err := queue.NewQuarantine(queue.QuarantineConfig{Store: store, Queue: printQueue{}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	since := time.Now().Add(-time.Minute)

	raw := []byte("Subject: invoice\r\n\r\nsee attachment\r\n")
	msg := filter.NewMessageBytes(filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"bob@example.net"}}, raw, filter.Limits{})
	verdict := filter.Verdict{Action: filter.Quarantine, Score: 10,
		Symbols: []filter.Symbol{{Name: "CLAMAV_VIRUS", Score: 10, Detail: "Win.Test.EICAR_HDB-1"}}}
	id, err := q.Hold(ctx, msg, verdict)
	if err != nil {
		panic(err) // a gateway answers 4xx
	}

	page, _ := q.List(ctx, queue.QuarantineFilter{Symbol: "CLAMAV_*", Since: since})
	for _, h := range page.Items {
		fmt.Println("held:", h.Envelope.MailFrom, h.Action, h.Reason())
	}
	digest, _ := q.Digest(ctx, "", since)
	fmt.Println("bob has", len(digest["bob@example.net"]), "held")

	if _, err := q.Release(ctx, id); err != nil {
		panic(err)
	}
	page, _ = q.List(ctx, queue.QuarantineFilter{})
	fmt.Println("left:", len(page.Items))
	// Output:
	// held: a@example.org quarantine [CLAMAV_VIRUS]
	// bob has 1 held
	// queued for [bob@example.net]: 36 bytes
	// left: 0
}
