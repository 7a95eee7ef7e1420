package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	// One run over a file per case: the default configuration compiles
	// SpamAssassin's rules once, not once a case.
	dir := t.TempDir()
	var paths []string
	for i, tt := range tests {
		p := filepath.Join(dir, fmt.Sprintf("%d.eml", i))
		require.NoError(t, os.WriteFile(p, []byte(strings.ReplaceAll(tt.raw, "\n", "\r\n")), 0o600))
		paths = append(paths, p)
	}
	code, out, errs := runScan(t, "", append([]string{"-format", "jsonl"}, paths...)...)
	require.Equal(t, 0, code, errs)
	got := map[string]struct {
		Action  string
		Symbols []struct{ Name string }
	}{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct {
			File    string
			Action  string
			Symbols []struct{ Name string }
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v), sc.Text())
		got[v.File] = struct {
			Action  string
			Symbols []struct{ Name string }
		}{v.Action, v.Symbols}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := got[paths[i]]
			require.True(t, ok, "no verdict for %s in\n%s", paths[i], out)
			assert.Equal(t, tt.action, v.Action, out)
			var names []string
			for _, s := range v.Symbols {
				names = append(names, s.Name)
			}
			assert.Contains(t, names, tt.symbol)
		})
	}
}
