package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultConfigJudgesDefects: the scan CLI's default configuration
// (no flags, no file) turns parser defects into symbols, and an ambiguous
// structure over a file into quarantine.
func TestDefaultConfigJudgesDefects(t *testing.T) {
	pdf := "JVBERi0xLjQKMSAwIG9iago8PD4+CmVuZG9iago="
	hdr := "From: a@example.com\nTo: b@example.org\nSubject: hello\nDate: Tue, 1 Dec 2026 08:00:00 +0000\nMessage-ID: <1@example.com>\nMIME-Version: 1.0\n"
	tests := []struct {
		name, raw, action, symbol string
	}{
		{
			name:   "duplicate boundaries over a pdf",
			raw:    hdr + "Content-Type: multipart/mixed; boundary=a; boundary=b\n\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n" + pdf + "\n--b--\n",
			action: "quarantine", symbol: "MIME_AMBIGUOUS",
		},
		{
			name:   "bare CRs in a text message",
			raw:    strings.ReplaceAll(hdr, "\n", "\r") + "\rhello there, this is a letter\r",
			action: "accept", symbol: "MIME_BARE_CR",
		},
		{
			name:   "decorated transfer encoding",
			raw:    hdr + "Content-Type: text/plain\nContent-Transfer-Encoding: \"base64\"\n\naGVsbG8=\n",
			action: "accept", symbol: "MIME_ENCODING",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runScan(t, strings.ReplaceAll(tt.raw, "\n", "\r\n"), "-format", "json", "-")
			require.Contains(t, []int{0, 1, 2, 3}, code, errs)
			var v struct {
				Action  string
				Symbols []struct{ Name string }
			}
			require.NoError(t, json.Unmarshal([]byte(out), &v), out)
			assert.Equal(t, tt.action, v.Action, out)
			var names []string
			for _, s := range v.Symbols {
				names = append(names, s.Name)
			}
			assert.Contains(t, names, tt.symbol)
		})
	}
}
