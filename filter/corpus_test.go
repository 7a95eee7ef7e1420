package filter

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRealMessages parses every message of the copied corpora: parsing
// must not fail, every part must be readable, and the tree must be
// consistent (offsets in range, children inside parents).
func TestRealMessages(t *testing.T) {
	files, err := filepath.Glob("testdata/mail/*/*")
	require.NoError(t, err)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			continue
		}
		n++
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			m := NewMessageBytes(Envelope{}, raw, Limits{})
			parts, err := m.Parts()
			require.NoError(t, err)
			require.NotEmpty(t, parts)
			for _, p := range parts {
				assert.GreaterOrEqual(t, p.bodyOff, p.headerStart, "part %s", p.Path)
				assert.GreaterOrEqual(t, p.bodyEnd, p.bodyOff, "part %s", p.Path)
				assert.LessOrEqual(t, p.bodyEnd, int64(len(raw)), "part %s", p.Path)
				if p.Parent != nil {
					assert.GreaterOrEqual(t, p.headerStart, p.Parent.bodyOff)
					assert.LessOrEqual(t, p.bodyEnd, p.Parent.bodyEnd)
				}
				assert.NotEmpty(t, p.ContentType)
				_, err := io.Copy(io.Discard, p.Open())
				assert.NoError(t, err)
				if p.IsText() {
					_, err := p.Text()
					assert.NoError(t, err)
				}
			}
		})
	}
	require.GreaterOrEqual(t, n, 90, "the corpus is incomplete")
}

// Spot checks against what the corpora's own tests expect.
func TestRealMessageDetails(t *testing.T) {
	load := func(t *testing.T, name string) *Message {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata/mail", name))
		require.NoError(t, err)
		return NewMessageBytes(Envelope{}, raw, Limits{})
	}
	t.Run("python msg_02 is a digest of rfc822 messages", func(t *testing.T) {
		m := load(t, "python/msg_02.txt")
		parts, err := m.Parts()
		require.NoError(t, err)
		var msgs int
		for _, p := range parts {
			if p.IsMessage() {
				msgs++
				require.Len(t, p.Children, 1, p.Path)
			}
		}
		assert.GreaterOrEqual(t, msgs, 5)
	})
	t.Run("enmime duplicate param keeps both names", func(t *testing.T) {
		m := load(t, "enmime/mime-duplicate-param.raw")
		var names []string
		for _, a := range m.Attachments() {
			names = append(names, a.Names...)
		}
		assert.NotEmpty(t, names)
	})
	t.Run("spamassassin sample spam has a subject", func(t *testing.T) {
		m := load(t, "spamassassin/sample-spam.txt")
		h := m.Header()
		assert.NotEmpty(t, h.Get("Subject"))
	})
}
