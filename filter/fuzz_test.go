package filter

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzMessage parses arbitrary input and walks every part: it must never
// panic and never exceed the limits.
func FuzzMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/mail/*/*")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add(deepMessage(40))
	f.Add(manyParts(30))
	lim := Limits{MaxHeaderBytes: 4096, MaxDepth: 8, MaxParts: 50, MaxDecodedBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := NewMessageBytes(Envelope{}, raw, lim)
		parts, _ := m.Parts()
		if len(parts) > lim.MaxParts {
			t.Fatalf("%d parts > limit %d", len(parts), lim.MaxParts)
		}
		for _, p := range parts {
			if p.Depth > lim.MaxDepth {
				t.Fatalf("depth %d > limit", p.Depth)
			}
			if p.bodyOff < p.headerStart || p.bodyEnd < p.bodyOff || p.bodyEnd > int64(len(raw)) {
				t.Fatalf("part %q offsets %d %d %d out of order (len %d)", p.Path, p.headerStart, p.bodyOff, p.bodyEnd, len(raw))
			}
			n, err := io.Copy(io.Discard, p.Open())
			if n > lim.MaxDecodedBytes {
				t.Fatalf("decoded %d > limit", n)
			}
			_ = err
			_, _ = p.Text()
			_ = p.IsAttachment()
		}
		_ = m.Header().Get("Subject")
	})
}
