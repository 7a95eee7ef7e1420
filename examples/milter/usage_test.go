package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// -h lists the exit status and an example; a bad flag is one usage error
// and prints nothing itself (main says it once).
func TestUsage(t *testing.T) {
	var errs bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &errs, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	text := errs.String()
	if !strings.Contains(strings.ToLower(text), "exit status") || !strings.Contains(text, "Example:\n  milter ") {
		t.Errorf("usage without exit status or example:\n%s", text)
	}
	errs.Reset()
	err := run(t.Context(), []string{"-nosuchflag"}, &errs, nil)
	var ue usageError
	if !errors.As(err, &ue) || errs.Len() != 0 || !strings.Contains(err.Error(), "-nosuchflag") {
		t.Errorf("bad flag: %v, printed %q: want a usage error, nothing printed", err, errs.String())
	}
}
