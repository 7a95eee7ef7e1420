package jetstream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/quarantine/quarantinetest"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
	"github.com/portcullis-mail/portcullis/relay"
)

// The benchmarks compare JetStream (one in-process server, file storage,
// sync_interval: always) with the local spool in the same run, on the
// same disk: a test temp dir, or PORTCULLIS_BENCH_DIR (never tmpfs: there
// fsync is free and the numbers mean nothing).

func benchDir(b *testing.B) string {
	if d := os.Getenv("PORTCULLIS_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "jsbench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

var body10k = bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0\r\n"), 100)

// backend opens a queue of one kind; deliver nil makes a producer only.
type backend struct {
	name string
	open func(b *testing.B, deliver queue.Deliverer) (queue.Enqueuer, func())
}

func backends(b *testing.B) []backend {
	srv := natstest.Start(b) // lives as long as the parent benchmark
	jsName := ""
	spoolDir := ""
	return []backend{
		{"spool", func(b *testing.B, d queue.Deliverer) (queue.Enqueuer, func()) {
			if spoolDir == "" || d == nil {
				spoolDir = benchDir(b)
			}
			q, err := queue.Open(spoolDir, queue.Config{Deliverer: d, Workers: 16, MinFreeBytes: 1, MaxDepth: -1})
			if err != nil {
				b.Fatal(err)
			}
			return q, func() { q.Close() }
		}},
		{"jetstream", func(b *testing.B, d queue.Deliverer) (queue.Enqueuer, func()) {
			if jsName == "" || d == nil {
				jsName = freshName()
			}
			s, err := jetstream.Open(bg, srv.URL, jetstream.Config{Name: jsName})
			if err != nil {
				b.Fatal(err)
			}
			q, err := jetstream.NewQueue(bg, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: d, Workers: 16, MaxDepth: -1}})
			if err != nil {
				b.Fatal(err)
			}
			return q, func() { q.Shutdown(bg); s.Close() }
		}},
	}
}

// fill enqueues n 10 KB messages from producers goroutines and returns
// the mean latency of one Enqueue.
func fill(b *testing.B, q queue.Enqueuer, n, producers int) time.Duration {
	var next, lat atomic.Int64
	var wg sync.WaitGroup
	env := filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.net"}}
	for range producers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				start := time.Now()
				if _, err := q.Enqueue(bg, env, bytes.NewReader(body10k)); err != nil {
					b.Error(err)
					return
				}
				lat.Add(int64(time.Since(start)))
			}
		})
	}
	wg.Wait()
	return time.Duration(lat.Load() / int64(max(n, 1)))
}

// BenchmarkEnqueue: durable enqueues of 10 KB messages, JetStream next to
// the local spool, 1, 8 and 64 producers.
func BenchmarkEnqueue(b *testing.B) {
	for _, be := range backends(b) {
		for _, producers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/producers=%d", be.name, producers), func(b *testing.B) {
				q, done := be.open(b, nil)
				defer done()
				b.SetBytes(int64(len(body10k)))
				b.ResetTimer()
				lat := fill(b, q, b.N, producers)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enqueues/s")
				b.ReportMetric(float64(lat)/1e6, "ms/enqueue")
			})
		}
	}
}

// BenchmarkDeliver: a queue filled with b.N messages (untimed) drained by
// 16 workers to a loopback SMTP sink, one transaction per message.
func BenchmarkDeliver(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			sink := testsvc.StartSMTPSink(b, testsvc.SMTPSinkConfig{})
			d, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{sink.Addr}}}, MaxConnsPerHost: 16})
			if err != nil {
				b.Fatal(err)
			}
			q, done := be.open(b, nil)
			fill(b, q, b.N, 32)
			done()
			b.ResetTimer()
			_, done = be.open(b, d)
			defer done()
			if got := sink.Wait(b.N, 10*time.Minute); len(got) < b.N {
				b.Fatalf("delivered %d of %d", len(got), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

type discard struct{ n atomic.Int64 }

func (d *discard) Enqueue(_ context.Context, _ filter.Envelope, body io.Reader) (queue.ID, error) {
	io.Copy(io.Discard, body)
	return queue.ID("d" + strconv.FormatInt(d.n.Add(1), 10)), nil
}

// BenchmarkRescan: re-scan PORTCULLIS_BENCH_HELD (10,000) held 10 KB
// messages with a pipeline that now passes them, releasing each (to a
// queue that discards), unthrottled; filling is untimed. One iteration
// is one whole re-scan: run with -benchtime=1x.
func BenchmarkRescan(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("PORTCULLIS_BENCH_HELD")); err == nil && v > 0 {
		n = v
	}
	stores := []struct {
		name string
		open func(b *testing.B) quarantine.Store
	}{
		{"dir", func(b *testing.B) quarantine.Store {
			s, err := quarantine.OpenDir(benchDir(b), quarantine.DirConfig{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"jetstream", func(b *testing.B) quarantine.Store {
			srv := natstest.Start(b)
			s, err := jetstream.OpenQuarantine(bg, srv.URL, jetstream.Config{Name: freshName()})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	pass := filter.NewPipeline(filter.Options{}, filter.Func("avscan", func(context.Context, *filter.Message) (filter.Result, error) {
		return filter.Result{}, nil
	}))
	for _, st := range stores {
		b.Run(fmt.Sprintf("%s/held=%d", st.name, n), func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				s := st.open(b)
				var wg sync.WaitGroup
				var next atomic.Int64
				for range 16 {
					wg.Go(func() {
						for next.Add(1) <= int64(n) {
							h, raw := quarantinetest.Held(int(next.Load()), len(body10k))
							if err := s.Put(bg, h, raw); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				q, err := quarantine.New(quarantine.Config{Store: s, Queue: &discard{}, RescanRate: rate.Inf})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				rep, err := q.Rescan(bg, pass, quarantine.RescanOptions{})
				el := time.Since(start)
				b.StopTimer()
				if err != nil || rep.Released != n {
					b.Fatalf("rescan %+v %v", rep, err)
				}
				b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
				s.Close()
			}
			b.StartTimer()
		})
	}
}
