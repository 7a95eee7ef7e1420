package quarantine_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

// printQueue is a queue.Enqueuer that prints what it is given.
type printQueue struct{}

func (printQueue) Enqueue(_ context.Context, env filter.Envelope, body io.Reader) (queue.ID, error) {
	b, _ := io.ReadAll(body)
	fmt.Printf("queued for %v: %d bytes\n", env.RcptTo, len(b))
	return "q1", nil
}

// Example holds a message an engine flagged, lists what that
// engine held, builds a recipient's digest and releases the message.
func Example() {
	dir, err := os.MkdirTemp("", "quarantine-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := quarantine.OpenDir(dir, quarantine.DirConfig{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	m, err := quarantine.New(quarantine.Config{Store: store, Queue: printQueue{}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	since := time.Now().Add(-time.Minute)

	raw := []byte("Subject: invoice\r\n\r\nsee attachment\r\n")
	msg := filter.NewMessageBytes(filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"bob@example.net"}}, raw, filter.Limits{})
	verdict := filter.Verdict{Action: filter.Quarantine, Score: 10,
		Symbols: []filter.Symbol{
			{Name: "AV_INFECTED", Score: 10, Detail: "clamd-1: Win.Test.EICAR_HDB-1"},
			{Name: "AV_CLAMD_1_INFECTED", Detail: "Win.Test.EICAR_HDB-1"}, // scanner.EngineSymbol("clamd-1")
		}}
	id, err := m.Hold(ctx, msg, verdict)
	if err != nil {
		panic(err) // a gateway answers 4xx
	}

	// Everything engine clamd-1 flagged since T: the faulty-update recovery.
	page, _ := m.List(ctx, quarantine.Query{Symbol: "AV_CLAMD_1_INFECTED", Since: since})
	for _, h := range page.Items {
		fmt.Println("held:", h.Envelope.MailFrom, h.Action, h.Reason())
	}
	digest, _ := m.Digest(ctx, "", since)
	fmt.Println("bob has", len(digest["bob@example.net"]), "held")

	if _, err := m.Release(ctx, id); err != nil {
		panic(err)
	}
	page, _ = m.List(ctx, quarantine.Query{})
	fmt.Println("left:", len(page.Items))
	// Output:
	// held: a@example.org quarantine [AV_INFECTED AV_CLAMD_1_INFECTED]
	// bob has 1 held
	// queued for [bob@example.net]: 36 bytes
	// left: 0
}
