package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
)

// ExampleQueue_Entries lists the shared queue from another process than
// the one that enqueued: what an operator sees through the admin API or
// "gateway queue list" on any node.
func ExampleQueue_Entries() {
	dir, err := os.MkdirTemp("", "nats-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		SyncAlways: true, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	defer srv.Shutdown()
	ctx := context.Background()
	open := func() *jetstream.Queue {
		s, err := jetstream.Open(ctx, srv.ClientURL(), jetstream.Config{Name: "example"})
		if err != nil {
			panic(err)
		}
		// Producers only: nothing is delivered, so the entries stay.
		q, err := jetstream.NewQueue(ctx, s, jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true}})
		if err != nil {
			panic(err)
		}
		return q
	}
	gw1, gw2 := open(), open()
	defer gw1.Shutdown(ctx)
	defer gw2.Shutdown(ctx)

	for _, to := range []string{"bob@example.net", "carol@example.net"} {
		env := filter.Envelope{MailFrom: "alice@example.org", RcptTo: []string{to}}
		if _, err := gw1.Enqueue(ctx, env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
			panic(err)
		}
	}
	// The second gateway's view catches up with every change stored.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := gw2.Sync(sctx); err != nil {
		panic(err)
	}
	fmt.Println("depth", gw2.Len())
	for _, e := range gw2.Entries() {
		fmt.Println(e.State, e.Envelope.RcptTo[0])
	}
	// Output:
	// depth 2
	// queued bob@example.net
	// queued carol@example.net
}
