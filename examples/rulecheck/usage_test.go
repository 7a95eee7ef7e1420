package main

import (
	"bytes"
	"strings"
	"testing"
)

// -h lists the exit status and an example; a bad flag is said once.
func TestUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-h"}, &out, &errs); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	text := errs.String()
	if !strings.Contains(strings.ToLower(text), "exit status") || !strings.Contains(text, "Example:\n  rulecheck ") {
		t.Errorf("usage without exit status or example:\n%s", text)
	}
	errs.Reset()
	if code := run([]string{"-nosuchflag"}, &out, &errs); code != 2 || strings.Count(errs.String(), "-nosuchflag") != 1 ||
		strings.Count(errs.String(), "\n") != 1 {
		t.Errorf("bad flag: exit %d, stderr %q: want 2 and the error once, on one line", code, errs.String())
	}
}
