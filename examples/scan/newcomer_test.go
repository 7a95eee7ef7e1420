package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

func TestHelpListsExitStatusAndExample(t *testing.T) {
	code, out, errs := runScan(t, "", "-h")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, "usage: scan")
	assert.Contains(t, errs, "-clamd")
	assert.Contains(t, errs, "Exit status:")
	assert.Contains(t, errs, "\n  2  ")
	assert.Contains(t, errs, "Examples:\n  scan ")
}

// A bad flag is said once, on one line, with where to look.
func TestBadFlagSaidOnce(t *testing.T) {
	code, out, errs := runScan(t, "", "-nosuchflag", "../../testdata/clean.eml")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Equal(t, 1, strings.Count(errs, "-nosuchflag"), errs)
	assert.Equal(t, "scan: flag provided but not defined: -nosuchflag (scan -h lists the flags)\n", errs)
}

// A quarantine verdict does not read as delivered, and the verdict
// header names the thresholds that decided.
func TestQuarantineTextSaysHeld(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("policy: {add_header: 5, quarantine: 10, reject: 15}\n"), 0o600))
	rules := filepath.Join(dir, "r.yaml")
	require.NoError(t, os.WriteFile(rules, []byte("rules:\n  - {name: HOLD_ME, kind: header, field: Subject, regex: 'hold me', score: 12}\n"), 0o600))
	msg := "From: a@example.org\r\nTo: b@example.net\r\nSubject: hold me\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\n" +
		"Message-ID: <1@example.org>\r\n\r\nhi\r\n"
	code, out, errs := runScan(t, msg, "-spamassassin=", "-config", cfg, "-rules", rules, "-")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "action:  quarantine")
	assert.Contains(t, out, "reply:   250 2.0.0 Message held for inspection")
	assert.NotContains(t, out, "250 2.0.0 OK")
	assert.Contains(t, out, "required=5.00 quarantine=10.00 reject=15.00")
}

// Random bytes are named as not mail. MIXED_SCRIPT_WORD (package rules'
// default set) may still fire on them: random bytes hold Cyrillic UTF-8
// between ASCII letters about once per 200 KB.
func TestRandomBytesAreNotMail(t *testing.T) {
	b := make([]byte, 200<<10)
	rand.NewChaCha8([32]byte{7}).Read(b)
	code, out, errs := runScan(t, string(b), "-format", "json", "-spamassassin=", "-")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `"MIME_NOT_MAIL"`)
	assert.Contains(t, out, "not a mail message: no header field, content binary")
}

// EICAR in a zip: clamd finds it in the leaf and in the whole message,
// one finding; an engine down: "no engine available" once.
func TestOneSymbolPerFindingAndDetailOnce(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	eicar := writeMessageWithZip(t, "readme.txt", testsvc.Eicar())
	v := scanJSON(t, "-clamd", d.Addr, eicar)
	count := map[string]int{}
	for _, s := range v.Symbols {
		count[s.Name]++
	}
	assert.Equal(t, 1, count["AV_INFECTED"], "%+v", v.Symbols)
	assert.Equal(t, 1, count["AV_CLAMD_1_INFECTED"], "%+v", v.Symbols)

	d.Stop()
	down := scanJSON(t, "-clamd", d.Addr, writeMessageWithZip(t, "readme.txt", []byte("text\n")))
	require.Equal(t, "tempfail", down.Action)
	for _, s := range down.Symbols {
		if s.Name == "AV_FAIL" {
			assert.Equal(t, 1, strings.Count(s.Detail, "no engine available"), s.Detail)
		}
	}
}
