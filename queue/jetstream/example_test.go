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

// Example runs a gateway's queue on JetStream: an embedded nats-server
// that syncs every write (the no-loss setting), a Store, and a shared
// Queue that delivers what any gateway on the same Name enqueues.
func Example() {
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
	store, err := jetstream.Open(ctx, srv.ClientURL(), jetstream.Config{Name: "example"})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	delivered := make(chan string, 1)
	deliver := queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		select { // a redelivery must not block Shutdown
		case delivered <- strings.Join(m.To, ","):
		default:
		}
		return make([]error, len(m.To)) // all delivered
	})
	q, err := jetstream.NewQueue(ctx, store, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: deliver}})
	if err != nil {
		panic(err)
	}
	defer q.Shutdown(ctx)

	env := filter.Envelope{MailFrom: "alice@example.org", RcptTo: []string{"bob@example.net"}}
	if _, err := q.Enqueue(ctx, env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		fmt.Println("answer", filter.ErrorReply(err).Code) // 4xx: the sender keeps the mail
		return
	}
	select {
	case to := <-delivered:
		fmt.Println("250 queued; delivered to", to)
	case <-time.After(time.Minute):
		fmt.Println("250 queued; not delivered within a minute")
	}
	// Output: 250 queued; delivered to bob@example.net
}
