package filter

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A text leaf is decoded once and every reader sees the same bytes: Open
// twice, then Text, all agree, and the limit error survives the sharing.
func TestTextPartDecodedOnce(t *testing.T) {
	body := strings.Repeat("caf=C3=A9 au lait\r\n", 200)
	raw := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
	want := strings.Repeat("café au lait\r\n", 200)

	m := NewMessageBytes(Envelope{}, []byte(raw), Limits{})
	parts, err := m.Parts()
	require.NoError(t, err)
	p := parts[0]
	for range 2 {
		got, err := io.ReadAll(p.Open())
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
	txt, err := p.Text()
	require.NoError(t, err)
	assert.Equal(t, want, txt)
	d1, _ := p.decoded()
	d2, _ := p.decoded()
	assert.Same(t, &d1[0], &d2[0], "decoded twice")

	t.Run("over the decoded limit", func(t *testing.T) {
		m := NewMessageBytes(Envelope{}, []byte(raw), Limits{MaxDecodedBytes: 100})
		parts, _ := m.Parts()
		for range 2 {
			got, err := io.ReadAll(parts[0].Open())
			var le *LimitError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, LimitDecodedBytes, le.Limit)
			assert.Len(t, got, 100)
		}
		_, err := parts[0].Text()
		var le *LimitError
		require.ErrorAs(t, err, &le)
	})
	t.Run("latin-1 is converted", func(t *testing.T) {
		raw := "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n"
		m := NewMessageBytes(Envelope{}, []byte(raw), Limits{})
		parts, _ := m.Parts()
		txt, err := parts[0].Text()
		require.NoError(t, err)
		assert.Equal(t, "café\r\n", txt)
		got, _ := io.ReadAll(parts[0].Open())
		assert.Equal(t, "caf\xe9\r\n", string(got), "Open keeps the charset")
	})
}

// An unencoded text leaf of a message in memory is its own decoded body:
// no copy, the same bytes as a spooled copy of the message reads, and the
// decoded limit still holds.
func TestTextPartInPlace(t *testing.T) {
	body := strings.Repeat("plain text line\r\n", 50)
	raw := []byte("Content-Type: text/plain\r\n\r\n" + body)
	m := NewMessageBytes(Envelope{}, raw, Limits{})
	mem, ok := m.Bytes()
	require.True(t, ok)
	assert.Same(t, &raw[0], &mem[0])
	parts, err := m.Parts()
	require.NoError(t, err)
	d, err := parts[0].decoded()
	require.NoError(t, err)
	_, off := parts[0].Offset()
	assert.Same(t, &raw[off], &d[0], "copied")
	assert.Equal(t, body, string(d))
	assert.Equal(t, len(d), cap(d), "an append could write into the message")

	spooled := NewMessage(Envelope{}, strings.NewReader(string(raw)), int64(len(raw)), Limits{})
	_, ok = spooled.Bytes()
	assert.False(t, ok)
	sp, _ := spooled.Parts()
	want, err := sp[0].Text()
	require.NoError(t, err)
	got, err := parts[0].Text()
	require.NoError(t, err)
	assert.Equal(t, want, got)

	for _, lim := range []int64{100, int64(len(body))} {
		m := NewMessageBytes(Envelope{}, raw, Limits{MaxDecodedBytes: lim})
		sm := NewMessage(Envelope{}, strings.NewReader(string(raw)), int64(len(raw)), Limits{MaxDecodedBytes: lim})
		p, _ := m.Parts()
		q, _ := sm.Parts()
		got, gerr := io.ReadAll(p[0].Open())
		want, werr := io.ReadAll(q[0].Open())
		assert.Equal(t, string(want), string(got), "limit %d", lim)
		assert.Equal(t, werr, gerr, "limit %d", lim)
		if lim == 100 {
			var le *LimitError
			require.ErrorAs(t, gerr, &le)
			assert.Len(t, got, 100)
		}
	}
}
