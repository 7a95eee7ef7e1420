package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulecheck(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "spam.eml"), []byte("Subject: win\r\n\r\nyou have won a prize\r\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ham.eml"), []byte("Subject: lunch\r\n\r\nsee you at noon\r\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "corpus.yaml"), []byte("corpus:\n  - {file: ham.eml, expect: accept}\n"), 0o644)
	write := func(name, score string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(`
thresholds: {add-header: 5}
rules:
  - {name: WON, kind: body, regex: '(?i)\byou have won\b', score: `+score+`}
corpus:
  - {file: spam.eml, expect: add-header}
`), 0o644)
		return f
	}
	good, bad := write("good.yaml", "6"), write("bad.yaml", "2")
	var out, errb bytes.Buffer
	if code := run([]string{"-corpus", filepath.Join(dir, "corpus.yaml"), "-v", good}, &out, &errb); code != 0 {
		t.Fatalf("good set: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "2 samples, every verdict as expected") {
		t.Fatalf("output: %s", out.String())
	}
	out.Reset()
	if code := run([]string{"-base", good, bad}, &out, &errb); code != 1 {
		t.Fatalf("verdict change: exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "no longer hitting WON(6.00)") {
		t.Fatalf("the changed rule is not named: %s", out.String())
	}
	os.WriteFile(bad, []byte("rules:\n  - {name: X, kind: body, regex: 'a(b'}\n"), 0o644)
	errb.Reset()
	if code := run([]string{bad}, &out, &errb); code != 2 || !strings.Contains(errb.String(), bad+":2") {
		t.Fatalf("bad file: exit %d, %s", code, errb.String())
	}
	if code := run(nil, &out, &errb); code != 2 {
		t.Fatalf("no arguments: exit %d", code)
	}
}
