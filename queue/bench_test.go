package queue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchDir is where benchmarks write: a real disk, never tmpfs, or fsync
// costs nothing and the numbers mean nothing. PORTCULLIS_BENCH_DIR
// overrides the test temp dir.
func benchDir(b *testing.B) string {
	if d := os.Getenv("PORTCULLIS_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "qbench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

var body10k = bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0\r\n"), 100)

// BenchmarkFsync is the disk's serial rate: write 10 KB, fsync, repeat —
// the ceiling of a queue that fsyncs once per message.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(benchDir(b), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(body10k)))
	for b.Loop() {
		if _, err := f.Write(body10k); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}

// BenchmarkEnqueue measures durable enqueues of 10 KB messages with 1, 8
// and 64 concurrent producers; each Enqueue returns only after its fsync.
func BenchmarkEnqueue(b *testing.B) {
	for _, producers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			m := newRecMetrics()
			q, err := Open(benchDir(b), Config{StoreOnly: true, MinFreeBytes: 1, MaxDepth: -1, Metrics: m})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			b.SetBytes(int64(len(body10k)))
			var next atomic.Int64
			var lat atomic.Int64
			env := testEnv()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range producers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						if _, err := q.Enqueue(context.Background(), env, bytes.NewReader(body10k)); err != nil {
							b.Error(err)
							return
						}
						lat.Add(int64(time.Since(start)))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enqueues/s")
			b.ReportMetric(float64(lat.Load())/float64(b.N)/1e6, "ms/enqueue")
			fsyncs := m.get("portcullis_queue_fsync_seconds_count")
			b.ReportMetric(float64(b.N)/fsyncs, "msgs/fsync")
			b.ReportMetric(m.get("portcullis_queue_fsync_seconds_sum")/fsyncs*1e3, "ms/fsync")
		})
	}
}
