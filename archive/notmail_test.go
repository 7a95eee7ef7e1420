package archive

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

// Input without a single header field is named for what it is:
// MIME_NOT_MAIL, saying whether the content is binary or text. Mail, and
// a headerless message attached to mail, are not.
func TestNotMail(t *testing.T) {
	random := make([]byte, 200<<10)
	r := rand.NewChaCha8([32]byte{19})
	r.Read(random)
	attached := lines("From: a@example.org\nSubject: fwd\nContent-Type: message/rfc822\n\njust text, no header\n")
	tests := []struct {
		name, raw, detail string
	}{
		{"200 KB of random bytes", string(random), "content binary"},
		{"text without a header", "just some text\nand more\n", "content text"},
		{"a header field", "Subject: hi\r\n\r\nbody\r\n", ""},
		{"a headerless attached message", string(attached), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := New(Config{}).Check(t.Context(), filter.NewMessageBytes(filter.Envelope{}, []byte(tt.raw), filter.Limits{}))
			require.NoError(t, err)
			var got []string
			for _, s := range res.Symbols {
				if s.Name == KindNotMail.Symbol() {
					got = append(got, s.Detail)
				}
			}
			if tt.detail == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%v", res.Symbols)
			assert.True(t, strings.Contains(got[0], "not a mail message") && strings.Contains(got[0], tt.detail), got[0])
			assert.Equal(t, filter.Accept, res.Action, "scored, not decided: %v", res)
		})
	}
}
