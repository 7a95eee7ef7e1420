package jetstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
	"github.com/portcullis-mail/portcullis/queue/queuetest"
)

var names atomic.Int64

// freshName returns a queue name no other test uses on a shared server.
func freshName() string { return fmt.Sprintf("t%d", names.Add(1)) }

func TestStoreConformance(t *testing.T) {
	srv := testsvc.StartNATS(t)
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		cfg := jetstream.Config{Name: freshName()}
		return func() (queue.Store, error) { return jetstream.Open(context.Background(), srv.URL, cfg) }
	})
}
