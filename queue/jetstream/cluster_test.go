package jetstream_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
)

// TestClusterFailover runs two gateways on a three-node cluster with
// three replicas and stops the node leading the work stream: every
// message whose Enqueue returned is delivered, before and after.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		// Only with -short, which CI never passes.
		t.Skip("cluster failover is not short")
	}
	c := natstest.StartCluster(t, 3)
	name := freshName()
	cfg := jetstream.Config{Name: name, Replicas: 3, Timeout: 5 * time.Second}
	var d deliveries
	var qs []*jetstream.Queue
	for gw := range 2 {
		s, err := jetstream.Open(bg, c.URLs(), cfg)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		// Quick retries: an attempt that meets the election is retried soon.
		qs = append(qs, startQueue(t, s, jetstream.QueueConfig{AckWait: 2 * time.Second,
			Delivery: queue.Config{Deliverer: d.deliverer(gw, nil), Workers: 4, RetryBase: 100 * time.Millisecond, RetryMax: time.Second}}))
	}
	q := qs[0]
	acked := map[queue.ID]bool{}
	enqueue := func(tag string, n int) {
		for i := range n {
			// A sender retries a 4xx; an election may cause a few.
			deadline := time.Now().Add(20 * time.Second)
			for {
				id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg(fmt.Sprint(tag, i))))
				if err == nil {
					acked[id] = true
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("enqueue during failover: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	enqueue("before", 15)
	eventually(t, "delivery before the failover", func() bool { return d.count() == len(acked) })

	// The work stream may be between leaders (an election under load).
	var leader *natstest.NATS
	eventually(t, "a leader for the work stream", func() bool {
		for _, n := range c.Nodes {
			if n.Server.JetStreamIsStreamLeader("$G", name+"_WORK") {
				leader = n
				return true
			}
		}
		return false
	})
	leader.Stop()
	enqueue("after", 15)
	eventually(t, "delivery after the failover", func() bool { return d.count() == len(acked) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range acked {
		if len(d.by[id]) == 0 {
			t.Errorf("acknowledged message %s never delivered", id)
		}
	}
}
