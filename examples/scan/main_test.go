package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runScan(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestJSONSchema(t *testing.T) {
	code, out, errs := runScan(t, "", "-format", "json", "-spamassassin=", "-client-ip", "192.0.2.1", "-from", "<a@example.com>",
		"-rcpt", "b@example.org", "-rcpt", "c@example.org", "../../testdata/sample.eml")
	require.Equal(t, 0, code, errs)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"action", "score", "symbols", "reply", "headers"}, keys)
	assert.IsType(t, "", v["action"])
	assert.IsType(t, float64(0), v["score"])
	require.IsType(t, []any{}, v["symbols"])
	for _, s := range v["symbols"].([]any) {
		sym := s.(map[string]any)
		assert.IsType(t, "", sym["name"])
		assert.IsType(t, float64(0), sym["score"])
		assert.IsType(t, "", sym["detail"])
	}
	reply := v["reply"].(map[string]any)
	assert.IsType(t, float64(0), reply["code"])
	assert.IsType(t, "", reply["enhanced"])
	assert.IsType(t, "", reply["text"])
	require.IsType(t, []any{}, v["headers"])
	hdrs := v["headers"].([]any)
	require.NotEmpty(t, hdrs)
	first := hdrs[0].(map[string]any)
	assert.Equal(t, "X-Spam-Status", first["name"], "headers are an ordered list, X-Spam-Status first")
	assert.Contains(t, first["value"], "required=5.00 reject=15.00")
}

func TestStdinAndText(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/clean.eml")
	require.NoError(t, err)
	code, out, _ := runScan(t, string(raw), "-spamassassin=", "-")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "action:  accept")
	assert.Contains(t, out, "reply:   250 2.0.0 OK")
}

func TestUsageAndIOErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"a.eml", "b.eml"},
		{"-format", "xml", "../../testdata/clean.eml"},
		{"-client-ip", "not-an-ip", "../../testdata/clean.eml"},
		{"-nosuchflag", "../../testdata/clean.eml"},
		{"does-not-exist.eml"},
		{t.TempDir()}, // a directory without messages
		{"-config", "does-not-exist.yaml", "../../testdata/clean.eml"},
	} {
		code, out, errs := runScan(t, "", args...)
		assert.Equal(t, 2, code, "%v", args)
		assert.Empty(t, out, "%v", args)
		assert.True(t, strings.HasPrefix(errs, "scan: ") || strings.Contains(errs, "flag provided but not defined"), "%v: %q", args, errs)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	// A limit so small that the sample exceeds it: the verdict must say so.
	require.NoError(t, os.WriteFile(cfg, []byte("limits:\n  max_message_bytes: 100\npolicy:\n  on_limit: reject\n"), 0o600))
	code, out, errs := runScan(t, "", "-format", "json", "-spamassassin=", "-config", cfg, "../../testdata/clean.eml")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `"MIME_LIMIT_MESSAGE_BYTES"`)
	assert.Contains(t, out, `"action": "reject"`)

	require.NoError(t, os.WriteFile(cfg, []byte("policy:\n  rejekt: 3\n"), 0o600))
	code, _, errs = runScan(t, "", "-config", cfg, "../../testdata/clean.eml")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "line 2")
}
