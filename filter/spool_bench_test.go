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

// BenchmarkTransaction measures one whole transaction (connect, helo,
// mail, two recipients, a 2 KiB DATA) through trivial filters: the cost
// the transaction adds around the filters themselves.
func BenchmarkTransaction(b *testing.B) {
	noop := func(name string, s Stage) Filter {
		return Func(name, func(context.Context, *Message) (Result, error) { return Result{}, nil }, s)
	}
	p := NewPipeline(Options{}, noop("c", Connect), noop("h", Helo), noop("m", MailFrom), noop("r", Rcpt), noop("d", Data))
	raw := append([]byte("Subject: x\r\n\r\n"), bytes.Repeat([]byte("y"), 2<<10)...)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tx := p.Begin(Envelope{})
		tx.Connect(ctx)
		tx.Helo(ctx, "mx.example.com")
		tx.Mail(ctx, "a@example.com")
		tx.Rcpt(ctx, "b@example.org")
		tx.Rcpt(ctx, "c@example.org")
		if _, err := tx.Data(ctx, bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
		tx.Close()
	}
}
