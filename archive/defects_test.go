package archive

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func lines(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func symbolNames(res filter.Result) []string {
	var out []string
	for _, s := range res.Symbols {
		out = append(out, s.Name)
	}
	return out
}

// TestDefectsReachTheVerdict: each parser defect becomes a MIME_* symbol;
// an ambiguous structure over a file quarantines, over plain text it only
// scores; and a file hidden by a defect is still found.
func TestDefectsReachTheVerdict(t *testing.T) {
	pe := b64(tinyPE())
	pdf := b64([]byte("%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"))
	tests := []struct {
		name    string
		raw     []byte
		action  filter.Action
		symbols []string
	}{
		{
			name: "two boundaries, a PE behind the second",
			raw: lines("Content-Type: multipart/mixed; boundary=a; boundary=b\n\n--a\nContent-Type: text/plain\n\nhi\n" +
				"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + pe + "\n--b--\n--a--\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_BOUNDARY_PARAMS"},
		},
		{
			name: "two boundaries over a pdf: quarantine",
			raw: lines("Content-Type: multipart/mixed; boundary=a; boundary=b\n\n--a\nContent-Type: text/plain\n\nhi\n" +
				"--b\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\n" + pdf + "\n--b--\n--a--\n"),
			action:  filter.Quarantine,
			symbols: []string{"MIME_AMBIGUOUS", "MIME_BOUNDARY_PARAMS"},
		},
		{
			name: "two boundaries over text only: scored",
			raw: lines("Content-Type: multipart/alternative; boundary=a; boundary=b\n\n--a\nContent-Type: text/plain\n\nhi\n" +
				"--a\nContent-Type: text/html\n\n<p>hi</p>\n--a--\n"),
			action:  filter.Accept,
			symbols: []string{"MIME_BOUNDARY_PARAMS"},
		},
		{
			name: "two Content-Type fields: text and a pdf read as base64",
			raw: lines("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/plain\nContent-Type: application/pdf\n" +
				"Content-Transfer-Encoding: base64\n\n" + pdf + "\n--a--\n"),
			action:  filter.Quarantine,
			symbols: []string{"MIME_AMBIGUOUS", "MIME_DUPLICATE_HEADER"},
		},
		{
			name: "two transfer encodings: the base64 reading is a PE",
			raw: lines("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit\n" +
				"Content-Transfer-Encoding: base64\n\n" + pe + "\n--a--\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_DUPLICATE_HEADER"},
		},
		{
			name: "multipart without boundary over a PE: guessed and found",
			raw: lines("Content-Type: multipart/mixed\n\n--zz\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
				pe + "\n--zz--\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_NO_BOUNDARY"},
		},
		{
			name:    "multipart without any delimiter, base64 of a PE as its body",
			raw:     lines("Content-Type: multipart/mixed\nContent-Transfer-Encoding: base64\n\n" + pe + "\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_NO_BOUNDARY"},
		},
		{
			name: "unterminated multipart over a pdf: quarantine",
			raw: lines("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: application/pdf; name=a.pdf\n" +
				"Content-Transfer-Encoding: base64\n\n" + pdf + "\n"),
			action:  filter.Quarantine,
			symbols: []string{"MIME_AMBIGUOUS", "MIME_UNTERMINATED"},
		},
		{
			name:    "unterminated multipart over text: scored",
			raw:     lines("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/plain\n\nhello\n"),
			action:  filter.Accept,
			symbols: []string{"MIME_UNTERMINATED"},
		},
		{
			name: "junk line hides the Content-Type of a PE",
			raw: lines("Subject: x\nthis is junk\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
				pe + "\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_HEADER_SYNTAX"},
		},
		{
			name: "bare CR lines hide a PE",
			raw: []byte("Content-Type: multipart/mixed; boundary=a\r\r--a\rContent-Type: application/octet-stream\r" +
				"Content-Transfer-Encoding: base64\r\r" + pe + "\r--a--\r"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_BARE_CR"},
		},
		{
			name:    "decorated encoding",
			raw:     lines("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64 (really)\n\n" + pe + "\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_ENCODING"},
		},
		{
			name:    "unknown encoding read as base64 too",
			raw:     lines("Content-Type: application/octet-stream\nContent-Transfer-Encoding: x-foo\n\n" + pe + "\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "MIME_ENCODING"},
		},
		{
			name:    "unknown encoding over text: scored",
			raw:     lines("Content-Type: text/plain\nContent-Transfer-Encoding: x-foo\n\nhello world\n"),
			action:  filter.Accept,
			symbols: []string{"MIME_ENCODING"},
		},
		{
			name:    "an unnamed text/plain part holding a PE",
			raw:     lines("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + pe + "\n"),
			action:  filter.Reject,
			symbols: []string{"ARCHIVE_BANNED_TYPE", "ARCHIVE_TYPE_MISMATCH"},
		},
	}
	in := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMsg(tt.raw)
			res, err := in.Check(context.Background(), m)
			require.NoError(t, err)
			assert.Equal(t, tt.action, res.Action, "%v (defects %v)", res.Symbols, m.Defects())
			got := symbolNames(res)
			for _, s := range tt.symbols {
				assert.Contains(t, got, s)
			}
		})
	}
}

func TestKindSymbols(t *testing.T) {
	assert.Equal(t, "ARCHIVE_BANNED_TYPE", KindBannedType.Symbol())
	assert.Equal(t, "MIME_BARE_CR", KindMIMEBareCR.Symbol())
	assert.Equal(t, KindMIMEBareCR, DefectKind(filter.DefectBareCR))
	acts, scores := DefaultActions(), DefaultScores()
	for _, k := range Kinds() {
		_, ok := acts[k]
		assert.True(t, ok, k)
		_, ok = scores[k]
		assert.True(t, ok, k)
	}
	// Every parser defect kind has its finding kind.
	for _, d := range []filter.DefectKind{filter.DefectBoundaryParams, filter.DefectDuplicateHeader, filter.DefectNoBoundary,
		filter.DefectUnterminated, filter.DefectHeaderSyntax, filter.DefectBareCR, filter.DefectEncoding,
		filter.DefectContentType, filter.DefectParams, filter.DefectDelimiter, filter.DefectMbox} {
		_, ok := acts[DefectKind(d)]
		assert.True(t, ok, d)
	}
	// The defaults are copies: changing one changes no inspector.
	acts[KindBannedType] = filter.Accept
	assert.Equal(t, filter.Reject, DefaultActions()[KindBannedType])
}
