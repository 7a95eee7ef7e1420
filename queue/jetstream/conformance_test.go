package jetstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/quarantine/quarantinetest"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
	"github.com/portcullis-mail/portcullis/queue/queuetest"
)

var names atomic.Int64

// freshName returns a queue name no other test uses on a shared server.
func freshName() string { return fmt.Sprintf("t%d", names.Add(1)) }

func TestStoreConformance(t *testing.T) {
	srv := natstest.Start(t)
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		cfg := jetstream.Config{Name: freshName()}
		return func() (queue.Store, error) { return jetstream.Open(context.Background(), srv.URL, cfg) }
	})
}

func TestQuarantineConformance(t *testing.T) {
	srv := natstest.Start(t)
	quarantinetest.Run(t, func(t *testing.T) quarantinetest.Opener {
		cfg := jetstream.Config{Name: freshName()}
		return func() (quarantine.Store, error) {
			return jetstream.OpenQuarantine(context.Background(), srv.URL, cfg)
		}
	})
}

// TestQuarantineDrill is the faulty-update drill on JetStream: the
// quarantine and the shared queue both on one server.
func TestQuarantineDrill(t *testing.T) {
	srv := natstest.Start(t)
	cfg := jetstream.Config{Name: freshName()}
	quarantinetest.RunDrill(t, func() (quarantine.Store, error) {
		return jetstream.OpenQuarantine(context.Background(), srv.URL, cfg)
	}, func(t *testing.T, d queue.Deliverer) queue.Enqueuer {
		s := openStore(t, srv.URL, cfg.Name)
		return startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: d, RetryBase: 50 * time.Millisecond}})
	})
}
