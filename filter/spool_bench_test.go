package filter

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkSpool measures spooling a message held in memory (pooled
// chunks, nothing allocated per message once warm) and one spilled to a
// temporary file.
func BenchmarkSpool(b *testing.B) {
	for _, size := range []int{16 << 10, 512 << 10, 4 << 20} {
		raw := bytes.Repeat([]byte("x"), size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			cfg := SpoolConfig{Dir: b.TempDir()}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				sp, err := NewSpool(context.Background(), bytes.NewReader(raw), cfg)
				if err != nil {
					b.Fatal(err)
				}
				sp.Close()
			}
		})
	}
}
