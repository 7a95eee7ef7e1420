package filter

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestContentTypeComments: a Content-Type with comments or spaced tokens
// is what a client that reads RFC 2045's syntax takes it for, so the parts
// of a multipart so declared are parts, not text.
func TestContentTypeComments(t *testing.T) {
	for _, c := range []struct {
		ct, want, boundary string
	}{
		{`(comment) multipart/mixed (c); BoUnDaRy = "zz"`, "multipart/mixed", "zz"},
		{`multipart (a (nested) one) / mixed; boundary=zz`, "multipart/mixed", "zz"},
		{`multipart /mixed; boundary="zz"`, "multipart/mixed", "zz"},
		{`multipart/ mixed; boundary="zz"`, "multipart/mixed", "zz"},
		{`(a; semicolon \) inside) multipart/mixed; boundary=zz`, "multipart/mixed", "zz"},
		{`multipart/mixed (open comment; boundary=zz`, "multipart/mixed", ""},
	} {
		main, params := parseParamHeader(c.ct)
		assert.Equal(t, c.want, main, c.ct)
		assert.Equal(t, c.boundary, paramValue(params, "boundary"), c.ct)
	}
	_, params := parseParamHeader(`application/octet-stream (x); name="report (1).pdf"`)
	assert.Equal(t, "report (1).pdf", paramValue(params, "name"), "a quoted value keeps its parentheses")

	raw := crlf("From: a@example.org\nContent-Type: (comment) multipart/mixed (c); BoUnDaRy = \"zz\"\n\n--zz\n" +
		"Content-Type: application/x-msdownload\nContent-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\n--zz--\n")
	m := NewMessageBytes(Envelope{}, raw, Limits{})
	assert.Equal(t, "multipart/mixed", mustPart(m, "").ContentType)
	assert.Equal(t, "application/x-msdownload", mustPart(m, "1").ContentType)
}
