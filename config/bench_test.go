package config

import (
	"context"
	"runtime"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// BenchmarkDefaultPipeline runs the default pipeline (the embedded
// configuration: archive inspector and default rules) over each corpus
// tier, parsing included, and reports what the speed goals are stated in:
// allocated bytes per message byte (goal ≤ 2) and allocations per KB
// (goal ≤ 20), and the process's CPU time per message (cpu-ns/op), which
// a busy machine inflates less than ns/op.
func BenchmarkDefaultPipeline(b *testing.B) {
	f, err := BuildFilters(context.Background(), Default(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	lim := Default().Limits.FilterLimits()
	for _, tier := range benchcorpus.Tiers() {
		b.Run(tier.Name, func(b *testing.B) {
			raw := tier.Raw
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			ctx := context.Background()
			var before, after runtimeStats
			before.read()
			cpu := benchcorpus.ProcessCPU()
			for b.Loop() {
				m := filter.NewMessageBytes(filter.Envelope{}, raw, lim)
				v := f.Pipeline.CheckAll(ctx, m)
				if v.Action == filter.Tempfail {
					b.Fatalf("tempfail: %+v", v)
				}
			}
			cpu = benchcorpus.ProcessCPU() - cpu
			after.read()
			n := float64(b.N)
			bytes, allocs := float64(after.bytes-before.bytes)/n, float64(after.allocs-before.allocs)/n
			b.ReportMetric(bytes/float64(len(raw)), "alloc-x")
			b.ReportMetric(allocs/(float64(len(raw))/1024), "allocs/KB")
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/op")
		})
	}
}

type runtimeStats struct{ bytes, allocs uint64 }

func (s *runtimeStats) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.bytes, s.allocs = ms.TotalAlloc, ms.Mallocs
}
