package filter

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func hasDefect(m *Message, k DefectKind, part string) bool {
	for _, d := range m.Defects() {
		if d.Kind == k && d.Part == part {
			return true
		}
	}
	return false
}

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// partByName finds the first part carrying name.
func partByName(m *Message, name string) *Part {
	parts, _ := m.Parts()
	for _, p := range parts {
		for _, n := range p.Names {
			if n == name {
				return p
			}
		}
	}
	return nil
}

func decoded(t *testing.T, p *Part, enc string) string {
	t.Helper()
	b, err := io.ReadAll(p.OpenAs(enc))
	require.NoError(t, err)
	return string(b)
}

// TestDefects checks that each malformation is recorded with its kind and
// part, and that the part is read the most lenient way: the way that shows
// what a lenient client shows.
func TestDefects(t *testing.T) {
	tests := []struct {
		name  string
		raw   []byte
		kind  DefectKind
		part  string
		check func(t *testing.T, m *Message)
	}{
		{
			name: "two boundary parameters: delimiters of both are honoured",
			raw: crlf("Content-Type: multipart/mixed; boundary=a; boundary=b\n\n--a\nContent-Type: text/plain\n\nA\n" +
				"--b\nContent-Type: application/octet-stream; name=x.exe\n\nMZ\n--b--\n--a--\n"),
			kind: DefectBoundaryParams,
			check: func(t *testing.T, m *Message) {
				require.NotNil(t, partByName(m, "x.exe"))
			},
		},
		{
			name: "two Content-Type fields: the container reading wins, names of both kept",
			raw: crlf("Content-Type: text/plain; name=a.txt\nContent-Type: multipart/mixed; boundary=z\n\n--z\n" +
				"Content-Type: application/octet-stream; name=x.exe\n\nMZ\n--z--\n"),
			kind: DefectDuplicateHeader,
			check: func(t *testing.T, m *Message) {
				require.NotNil(t, partByName(m, "x.exe"))
				assert.Equal(t, "multipart/mixed", m.Header().Get("Content-Type")[:0]+mustPart(m, "").ContentType)
				assert.Contains(t, mustPart(m, "").Names, "a.txt")
			},
		},
		{
			name: "two Content-Transfer-Encoding fields: both readings offered",
			raw:  crlf("Content-Type: application/octet-stream; name=x.bin\nContent-Transfer-Encoding: 7bit\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n"),
			kind: DefectDuplicateHeader,
			check: func(t *testing.T, m *Message) {
				p := mustPart(m, "")
				assert.Equal(t, []string{"7bit", "base64"}, p.Encodings())
				assert.Equal(t, "hello", decoded(t, p, "base64"))
			},
		},
		{
			name: "two Content-Disposition fields: attachment wins",
			raw:  crlf("Content-Disposition: inline\nContent-Disposition: attachment; filename=x.exe\n\nMZ\n"),
			kind: DefectDuplicateHeader,
			check: func(t *testing.T, m *Message) {
				p := mustPart(m, "")
				assert.Equal(t, "attachment", p.Disposition)
				assert.Equal(t, []string{"x.exe"}, p.Names)
			},
		},
		{
			name: "empty boundary: guessed",
			raw:  crlf("Content-Type: multipart/mixed; boundary=\"\"\n\n--q\nContent-Type: application/x-msdownload; name=x.exe\n\nMZ\n--q--\n"),
			kind: DefectNoBoundary,
			check: func(t *testing.T, m *Message) {
				require.NotNil(t, partByName(m, "x.exe"))
			},
		},
		{
			name: "no delimiter at all: still recorded",
			raw:  crlf("Content-Type: multipart/mixed\n\nTVqQAAMAAAAEAAAA\n"),
			kind: DefectNoBoundary,
		},
		{
			name: "unterminated multipart",
			raw:  crlf("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/plain\n\nx\n"),
			kind: DefectUnterminated,
		},
		{
			name: "inner multipart closed by the outer delimiter",
			raw:  crlf("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--a--\n"),
			kind: DefectUnterminated,
			part: "1",
		},
		{
			name: "a line without colon inside the header is skipped, the fields after it read",
			raw:  crlf("Subject: x\nthis is junk\nContent-Type: application/octet-stream; name=x.exe\nContent-Transfer-Encoding: base64\n\nTVo=\n"),
			kind: DefectHeaderSyntax,
			check: func(t *testing.T, m *Message) {
				p := mustPart(m, "")
				assert.Equal(t, "application/octet-stream", p.ContentType)
				assert.Equal(t, "MZ", decoded(t, p, p.Encoding))
				assert.Equal(t, "x", m.Header().Get("Subject"))
			},
		},
		{
			name: "space in a field name",
			raw:  crlf("Subject: x\nContent Type: text/plain\nContent-Type: application/zip; name=a.zip\n\nPK\n"),
			kind: DefectHeaderSyntax,
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, "application/zip", mustPart(m, "").ContentType)
			},
		},
		{
			name: "8-bit and NUL in field names",
			raw:  []byte("Subject: x\r\nC\xf6ntent-Type: text/plain\r\nX-A\x00: y\r\nContent-Type: image/png; name=a.png\r\n\r\nx\r\n"),
			kind: DefectHeaderSyntax,
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, "image/png", mustPart(m, "").ContentType)
			},
		},
		{
			name: "a continuation as the first line is read as the field it holds",
			raw:  crlf(" Content-Type: application/octet-stream; name=x.exe\nSubject: y\n\nMZ\n"),
			kind: DefectHeaderSyntax,
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, []string{"x.exe"}, mustPart(m, "").Names)
				assert.Equal(t, "y", m.Header().Get("Subject"))
			},
		},
		{
			name: "a part header without a blank line before its delimiter",
			raw:  crlf("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/plain\nbody one\nbody two\n--a--\n"),
			kind: DefectHeaderSyntax,
			part: "1",
			check: func(t *testing.T, m *Message) {
				txt, err := mustPart(m, "1").Text()
				require.NoError(t, err)
				assert.Equal(t, "body one\r\nbody two", txt)
			},
		},
		{
			name: "bare CR line endings read as line breaks",
			raw:  []byte("Content-Type: multipart/mixed; boundary=a\r\r--a\rContent-Type: application/octet-stream; name=x.exe\r\rMZ\r--a--\r"),
			kind: DefectBareCR,
			check: func(t *testing.T, m *Message) {
				p := partByName(m, "x.exe")
				require.NotNil(t, p)
				assert.Equal(t, "MZ", decoded(t, p, p.Encoding))
			},
		},
		{
			name: "decorated encoding: parameters",
			raw:  crlf("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64; x=y\n\nTVo=\n"),
			kind: DefectEncoding,
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, "base64", mustPart(m, "").Encoding)
			},
		},
		{
			name: "decorated encoding: quotes",
			raw:  crlf("Content-Type: application/octet-stream\nContent-Transfer-Encoding: \"base64\"\n\nTVo=\n"),
			kind: DefectEncoding,
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, "base64", mustPart(m, "").Encoding)
			},
		},
		{
			name: "decorated encoding: comment",
			raw:  crlf("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64 (it is)\n\nTVo=\n"),
			kind: DefectEncoding,
			check: func(t *testing.T, m *Message) {
				assert.Equal(t, "base64", mustPart(m, "").Encoding)
			},
		},
		{
			name: "unknown encoding: raw first, base64 offered",
			raw:  crlf("Content-Type: application/octet-stream\nContent-Transfer-Encoding: x-foo\n\nTVo=\n"),
			kind: DefectEncoding,
			check: func(t *testing.T, m *Message) {
				p := mustPart(m, "")
				assert.Equal(t, []string{"x-foo", "base64"}, p.Encodings())
				assert.Equal(t, "TVo=\r\n", decoded(t, p, p.Encoding))
				assert.Equal(t, "MZ", decoded(t, p, "base64"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMessageBytes(Envelope{}, tt.raw, Limits{})
			require.NoError(t, parseAll(m))
			assert.True(t, hasDefect(m, tt.kind, tt.part), "want %s in part %q, have %v", tt.kind, tt.part, m.Defects())
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func mustPart(m *Message, path string) *Part {
	parts, _ := m.Parts()
	for _, p := range parts {
		if p.Path == path {
			return p
		}
	}
	panic("no part " + path)
}

// TestWellFormedHasNoDefects: the readings above cost nothing on ordinary
// mail.
func TestWellFormedHasNoDefects(t *testing.T) {
	raw := crlf("From: a@example.com\nSubject: hi\nContent-Type: multipart/mixed; boundary=\"x\"\n\n--x\n" +
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nhello=\n world\n--x\n" +
		"Content-Type: application/pdf; name=\"a.pdf\"\nContent-Disposition: attachment; filename=\"a.pdf\"\n" +
		"Content-Transfer-Encoding: base64\n\nJVBERi0=\n--x--\n")
	m := NewMessageBytes(Envelope{}, raw, Limits{})
	require.NoError(t, parseAll(m))
	assert.Empty(t, m.Defects())
	// LF-only and CRCRLF endings are not bare CRs.
	for _, eol := range []string{"\n", "\r\r\n"} {
		m := NewMessageBytes(Envelope{}, []byte(strings.ReplaceAll(string(raw), "\r\n", eol)), Limits{})
		require.NoError(t, parseAll(m))
		assert.Empty(t, m.Defects(), "eol %q", eol)
		assert.Len(t, m.Attachments(), 1)
	}
}

func TestDefectsAreBounded(t *testing.T) {
	raw := "Subject: x\r\n" + strings.Repeat("junk\r\nX-A: b\r\n", 1000) + "\r\nbody\r\n"
	m := NewMessageBytes(Envelope{}, []byte(raw), Limits{})
	require.NoError(t, parseAll(m))
	assert.Len(t, m.Defects(), maxDefects)
	assert.Equal(t, "x", m.Header().Get("Subject"))
}

func TestNamesReadLeniently(t *testing.T) {
	for header, want := range map[string]string{
		"Content-Disposition: attachment; filename=\"=?UTF-8*en?Q?evil.exe?=\"":           "evil.exe",
		"Content-Disposition: attachment; filename=\"=?x-unknown?B?ZXZpbC5leGU=?=\"":      "evil.exe",
		"Content-Disposition: attachment; filename=\"=?utf-8?Q?ev?= =?utf-8?Q?il.exe?=\"": "evil.exe",
		"Content-Disposition: attachment; filename='evil.exe'":                            "evil.exe",
		"Content-Type: application/octet-stream; name*=UTF-8'en'evil%2Eexe":               "evil.exe",
	} {
		m := NewMessageBytes(Envelope{}, crlf(header+"\n\nMZ\n"), Limits{})
		parts, err := m.Parts()
		require.NoError(t, err)
		assert.Contains(t, parts[0].Names, want, header)
	}
}

func TestBareCRInBinaryIsData(t *testing.T) {
	raw := string(crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n")) +
		"\x00\x01\r\x02\x03\r\n" + string(crlf("--b--\n"))
	m := NewMessageBytes(Envelope{}, []byte(raw), Limits{})
	require.NoError(t, parseAll(m))
	assert.False(t, hasDefect(m, DefectBareCR, ""), "%v", m.Defects())
	assert.False(t, hasDefect(m, DefectBareCR, "1"), "%v", m.Defects())
}
