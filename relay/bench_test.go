package relay_test

import (
	"bytes"
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/relay"
)

// benchDir is where benchmarks write: a real disk, never tmpfs, or fsync
// costs nothing and the numbers mean nothing. PORTCULLIS_BENCH_DIR
// overrides the test temp dir.
func benchDir(b *testing.B) string {
	if d := os.Getenv("PORTCULLIS_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "rbench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

var body10k = bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0\r\n"), 100)

var env = filter.Envelope{MailFrom: "sender@example.org", RcptTo: []string{"rcpt@example.net"}, Helo: "client.example.org"}

// BenchmarkDeliverSMTP measures delivery from a filled spool to a loopback
// SMTP sink, one transaction per message, 16 workers: the queue is filled
// first (untimed), then a queue with the SMTP deliverer drains it.
func BenchmarkDeliverSMTP(b *testing.B) {
	sink := testsvc.StartSMTPSink(b, testsvc.SMTPSinkConfig{})
	d, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{sink.Addr}}}, MaxConnsPerHost: 16})
	if err != nil {
		b.Fatal(err)
	}
	s, err := queue.OpenSpool(benchDir(b), queue.SpoolConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill, err := queue.New(s, queue.Config{MinFreeBytes: 1, MaxDepth: -1})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := fill.Enqueue(context.Background(), env, bytes.NewReader(body10k)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	fill.Close()
	b.ResetTimer()
	q, err := queue.New(s, queue.Config{Deliverer: d, Workers: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	if got := sink.Wait(b.N, 5*time.Minute); len(got) < b.N {
		b.Fatalf("delivered %d of %d", len(got), b.N)
	}
	for q.Len() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
