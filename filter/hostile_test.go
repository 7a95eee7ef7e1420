package filter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bounded runs fn and fails the test if it took longer than d or allocated
// more than maxAlloc bytes in total.
func bounded(t *testing.T, d time.Duration, maxAlloc uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	fn()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("took %v, allocated %d KiB", took, alloc>>10)
	assert.Less(t, took, d, "time bound")
	assert.Less(t, alloc, maxAlloc, "allocation bound")
}

func parseAll(m *Message) error {
	parts, err := m.Parts()
	for _, p := range parts {
		if _, e := io.Copy(io.Discard, p.Open()); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func deepMessage(levels int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: deep\r\n")
	for i := range levels {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbottom\r\n")
	for i := levels - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}

func manyParts(n int) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for range n {
		b.WriteString("--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
	}
	b.WriteString("--x--\r\n")
	return []byte(b.String())
}

func TestHostileMIME(t *testing.T) {
	big := strings.Repeat("a", 1<<20)
	tests := []struct {
		name  string
		raw   []byte
		limit Limit // expected limit error, "" for none
		check func(t *testing.T, m *Message)
	}{
		{name: "nesting 10,000 deep", raw: deepMessage(10000), limit: LimitDepth},
		{name: "100,000 parts", raw: manyParts(100000), limit: LimitParts},
		{name: "1 MB header line", raw: []byte("Subject: " + big + "\r\n\r\nbody\r\n"), limit: LimitHeaderBytes},
		{
			name: "10 MB part header",
			raw: []byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" +
				strings.Repeat("X-Junk: "+strings.Repeat("j", 1000)+"\r\n", 10000) + "\r\nbody\r\n--x--\r\n"),
			limit: LimitHeaderBytes,
		},
		{
			name: "missing closing boundaries",
			raw:  []byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\none\r\n--a\r\n\r\ntwo\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				require.Len(t, parts, 4)
				txt, err := parts[2].Text()
				require.NoError(t, err)
				assert.Equal(t, "one", txt)
				txt, _ = parts[3].Text()
				assert.Equal(t, "two\r\n", txt)
				assert.NotEmpty(t, m.Defects())
			},
		},
		{
			name: "duplicated boundaries",
			raw:  []byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a\r\n--a\r\nContent-Type: text/plain\r\n\r\nlast\r\n--a--\r\n--a--\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				require.Len(t, parts, 4)
				txt, _ := parts[3].Text()
				assert.Equal(t, "last", txt)
			},
		},
		{
			name: "multipart without boundary: guessed from the first delimiter",
			raw:  []byte("Content-Type: multipart/mixed\r\n\r\n--a\r\n\r\nx\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				require.Len(t, parts, 2)
				txt, _ := parts[1].Text()
				assert.Equal(t, "x\r\n", txt)
				assert.True(t, hasDefect(m, DefectNoBoundary, ""))
			},
		},
		{
			name: "bad base64 hides nothing",
			raw:  []byte("Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs!bG8g*d29y\r\nbGQ\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				b, err := io.ReadAll(parts[0].Open())
				require.NoError(t, err)
				assert.Equal(t, "hello world", string(b))
			},
		},
		{
			name: "bad quoted-printable",
			raw:  []byte("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak =ZZ bad =3D ok\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				txt, _ := parts[0].Text()
				assert.Contains(t, txt, "softbreak")
			},
		},
		{
			name: "unknown charset",
			raw:  []byte("Content-Type: text/plain; charset=x-klingon\r\n\r\nqapla\xff\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				txt, err := parts[0].Text()
				require.NoError(t, err)
				assert.Equal(t, "qapla\uFFFD\r\n", txt)
			},
		},
		{
			name: "NUL bytes",
			raw:  []byte("Subject: a\x00b\r\nContent-Type: text/plain\r\n\r\nx\x00y\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				txt, _ := parts[0].Text()
				assert.Equal(t, "x\x00y\r\n", txt)
			},
		},
		{
			name: "x-uuencode",
			raw:  []byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 evil.exe\r\n+:&5L;&\\@=V]R;&0`\r\n`\r\nend\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				assert.Equal(t, []string{"evil.exe"}, parts[0].Names)
				b, _ := io.ReadAll(parts[0].Open())
				assert.Equal(t, "hello world", string(b))
			},
		},
		{
			name: "no header/body separator",
			raw:  []byte("From: a@example.com\r\nSubject: x\r\nthis line is body\r\nand this\r\n"),
			check: func(t *testing.T, m *Message) {
				parts, _ := m.Parts()
				require.Len(t, parts, 1)
				assert.Equal(t, "x", m.Header().Get("Subject"))
				txt, _ := parts[0].Text()
				assert.Equal(t, "this line is body\r\nand this\r\n", txt)
			},
		},
		{
			name: "header only",
			raw:  []byte("From: a@example.com\r\nSubject: x"),
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, "x", m.Header().Get("Subject"))
			},
		},
		{name: "empty", raw: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			m := NewMessageBytes(Envelope{}, tt.raw, Limits{})
			bounded(t, 2*time.Second, 16<<20, func() { err = parseAll(m) })
			if tt.limit != "" {
				var le *LimitError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, tt.limit, le.Limit)
				assert.ErrorIs(t, err, ErrLimit)
			} else {
				require.NoError(t, err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestLimitsExceeded(t *testing.T) {
	raw := []byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + strings.Repeat("QUFB", 1000) + "\r\n")
	t.Run("message bytes", func(t *testing.T) {
		m := NewMessageBytes(Envelope{}, raw, Limits{MaxMessageBytes: 100})
		_, err := m.Parts()
		var le *LimitError
		require.ErrorAs(t, err, &le)
		assert.Equal(t, LimitMessageBytes, le.Limit)
		assert.Equal(t, "MIME_LIMIT_MESSAGE_BYTES", le.Symbol())
	})
	t.Run("decoded bytes", func(t *testing.T) {
		m := NewMessageBytes(Envelope{}, raw, Limits{MaxDecodedBytes: 2999})
		parts, err := m.Parts()
		require.NoError(t, err)
		_, err = parts[0].DecodedSize()
		var le *LimitError
		require.ErrorAs(t, err, &le)
		assert.Equal(t, LimitDecodedBytes, le.Limit)
	})
	t.Run("decoded bytes exactly at the limit", func(t *testing.T) {
		m := NewMessageBytes(Envelope{}, raw, Limits{MaxDecodedBytes: 3000})
		parts, _ := m.Parts()
		n, err := parts[0].DecodedSize()
		require.NoError(t, err)
		assert.EqualValues(t, 3000, n)
	})
	t.Run("depth exactly at the limit", func(t *testing.T) {
		// deepMessage(n) puts its text part at depth n.
		m := NewMessageBytes(Envelope{}, deepMessage(4), Limits{MaxDepth: 4})
		_, err := m.Parts()
		require.NoError(t, err)
		m = NewMessageBytes(Envelope{}, deepMessage(5), Limits{MaxDepth: 4})
		_, err = m.Parts()
		require.True(t, errors.Is(err, ErrLimit))
	})
	t.Run("parts exactly at the limit", func(t *testing.T) {
		m := NewMessageBytes(Envelope{}, manyParts(9), Limits{MaxParts: 10})
		_, err := m.Parts()
		require.NoError(t, err)
		m = NewMessageBytes(Envelope{}, manyParts(10), Limits{MaxParts: 10})
		_, err = m.Parts()
		require.ErrorIs(t, err, ErrLimit)
	})
	t.Run("limit symbol in a verdict", func(t *testing.T) {
		p := NewPipeline(Options{Policy: DefaultPolicy()})
		v := p.Check(context.Background(), Data, NewMessageBytes(Envelope{}, deepMessage(100), Limits{}))
		assert.Equal(t, Quarantine, v.Action)
		assert.True(t, v.Has("MIME_LIMIT_DEPTH"))
	})
}
