package filter

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCandidateNames(t *testing.T) {
	tests := []struct {
		name    string
		headers string
		want    []string
	}{
		{"plain filename", `Content-Disposition: attachment; filename="report.pdf"`, []string{"report.pdf"}},
		{"content-type name only", `Content-Type: application/octet-stream; name=setup.exe`, []string{"setup.exe"}},
		{"inline with name is still named", "Content-Type: application/octet-stream; name=x.exe\r\nContent-Disposition: inline", []string{"x.exe"}},
		{"both differ", "Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf.exe\"", []string{"a.pdf.exe", "a.pdf"}},
		{"duplicate parameters kept", `Content-Disposition: attachment; filename="ok.txt"; filename="evil.exe"`, []string{"ok.txt", "evil.exe"}},
		{"rfc2047 in quotes", `Content-Type: application/octet-stream; name="=?utf-8?B?aW52b2ljZS5leGU=?="`, []string{"invoice.exe"}},
		{"rfc2047 unquoted q", `Content-Disposition: attachment; filename==?iso-8859-1?Q?r=E9sum=E9.exe?=`, []string{"résumé.exe"}},
		{"rfc2231 extended", `Content-Disposition: attachment; filename*=utf-8''%E2%80%AEexe.pdf`, []string{"\u202eexe.pdf"}},
		{"rfc2231 continuations out of order", `Content-Disposition: attachment; filename*1=".exe"; filename*0*=utf-8''inv%20oice`, []string{"inv oice.exe"}},
		{"rfc2231 latin1", `Content-Disposition: attachment; filename*=iso-8859-1'en'caf%E9.scr`, []string{"café.scr"}},
		{"missing semicolon", `Content-Disposition: attachment filename="nosemi.exe"`, []string{"nosemi.exe"}},
		{"unquoted with spaces", `Content-Disposition: attachment; filename=my file.exe`, []string{"my file.exe"}},
		{"unterminated quote", `Content-Disposition: attachment; filename="open.exe`, []string{"open.exe"}},
		{"tspecials unquoted", `Content-Type: application/octet-stream; name=a(b).exe`, []string{"a(b).exe"}},
		{"empty name ignored", `Content-Disposition: attachment; filename=""`, nil},
		{"upper case keys", `Content-Disposition: ATTACHMENT; FILENAME="UP.EXE"`, []string{"UP.EXE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.headers + "\r\n\r\nbody\r\n"
			m := NewMessageBytes(Envelope{}, []byte(raw), Limits{})
			parts, err := m.Parts()
			require.NoError(t, err)
			assert.Equal(t, tt.want, parts[0].Names)
		})
	}
}

func TestAttachmentClassification(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: text/plain\r\nContent-Disposition: inline; name=x.exe\r\n\r\nMZ\r\n" +
		"--b\r\nContent-Type: image/png\r\n\r\npng\r\n" +
		"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnotes\r\n--b--\r\n"
	m := NewMessageBytes(Envelope{}, []byte(raw), Limits{})
	var got []string
	for _, p := range m.Attachments() {
		got = append(got, p.Path)
	}
	assert.Equal(t, []string{"2", "3", "4"}, got)
	assert.Equal(t, "inline", m.Attachments()[0].Disposition)
}

func TestParamParser(t *testing.T) {
	mt, params := parseParamHeader(`Multipart/Mixed; boundary="a;b"; charset=utf-8`)
	assert.Equal(t, "multipart/mixed", mt)
	assert.Equal(t, "a;b", paramValue(params, "boundary"))
	assert.Equal(t, "utf-8", paramValue(params, "charset"))
	assert.Equal(t, "x", paramValue([]param{{key: "title*", value: "us-ascii'en'x"}}, "title"))
}
