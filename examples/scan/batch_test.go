package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBatchJSONL: files, a directory and an mbox in one run, one JSON line
// per message naming it, and a summary on standard error.
func TestBatchJSONL(t *testing.T) {
	dir := t.TempDir()
	clean, err := os.ReadFile("../../testdata/clean.eml")
	require.NoError(t, err)
	sample, err := os.ReadFile("../../testdata/sample.eml")
	require.NoError(t, err)
	sub := filepath.Join(dir, "maildir")
	require.NoError(t, os.Mkdir(sub, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(sub, "b.eml"), clean, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(sub, "a.eml"), sample, 0o600))
	// An mbox of two messages, the second quoting a "From " line in its body.
	mbox := "From a@example.org Thu Jan  1 00:00:00 1970\n" + strings.ReplaceAll(string(clean), "\r\n", "\n") + "\n" +
		"From b@example.org Thu Jan  1 00:00:00 1970\n" +
		"From: b@example.org\nSubject: quoted\n\n>From the start of a line\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n"
	mboxPath := filepath.Join(dir, "box.mbox")
	require.NoError(t, os.WriteFile(mboxPath, []byte(mbox), 0o600))

	code, out, errs := runScan(t, "", "-format", "jsonl", "-spamassassin=", "../../testdata/clean.eml", sub, mboxPath)
	require.Equal(t, 0, code, errs)
	var files, actions []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v struct {
			File   string `json:"file"`
			Action string `json:"action"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v), sc.Text())
		files = append(files, v.File)
		actions = append(actions, v.Action)
	}
	assert.Equal(t, []string{"../../testdata/clean.eml", filepath.Join(sub, "a.eml"), filepath.Join(sub, "b.eml"),
		mboxPath + "#1", mboxPath + "#2"}, files)
	assert.Equal(t, []string{"accept", "reject", "accept", "accept", "reject"}, actions)
	assert.Contains(t, errs, "scanned 5 messages")
	assert.Contains(t, errs, "accept 3, reject 2")
	assert.Contains(t, errs, "per message")

	// A missing file is reported and skipped; the others are scanned.
	code, out, errs = runScan(t, "", "-format", "jsonl", "-spamassassin=", filepath.Join(dir, "missing.eml"), "../../testdata/clean.eml")
	require.Equal(t, 2, code, errs)
	assert.Equal(t, 1, strings.Count(out, "\n"))
	assert.Contains(t, errs, "1 unreadable")
	// Standard input goes alone.
	code, _, errs = runScan(t, "", "-", "../../testdata/clean.eml")
	assert.Equal(t, 2, code, errs)
}

// TestBatchMboxLimit: a message of an mbox over the limit is reported and
// skipped, the next one scanned.
func TestBatchMboxLimit(t *testing.T) {
	old := maxMboxMessage
	maxMboxMessage = 100
	t.Cleanup(func() { maxMboxMessage = old })
	mbox := "From a@x Thu Jan  1 00:00:00 1970\nSubject: big\n\n" + strings.Repeat("x", 200) + "\n\n" +
		"From b@x Thu Jan  1 00:00:00 1970\nSubject: small\n\nhi\n"
	path := filepath.Join(t.TempDir(), "box")
	require.NoError(t, os.WriteFile(path, []byte(mbox), 0o600))
	code, out, errs := runScan(t, "", "-format", "jsonl", "-spamassassin=", path)
	require.Equal(t, 2, code, errs)
	assert.Contains(t, errs, path+"#1: message over 100 bytes")
	assert.Contains(t, out, `"file":"`+path+`#2"`)
	assert.Contains(t, errs, "scanned 1 messages, 1 unreadable")
}
