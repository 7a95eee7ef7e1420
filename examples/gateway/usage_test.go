package main

import (
	"bytes"
	"strings"
	"testing"
)

// -h, for the gateway and its operator commands, lists the exit status
// and an example; a bad flag is said once.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"quarantine", "-h"}, {"quarantine", "list", "-h"}, {"quarantine", "release", "-h"}} {
		var out, errs bytes.Buffer
		if code := run(args, &out, &errs); code != 0 {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
		text := errs.String()
		if !strings.Contains(strings.ToLower(text), "exit status") || !strings.Contains(text, "Example:\n  gateway ") ||
			!strings.HasPrefix(text, "usage: gateway") {
			t.Errorf("%v: usage without exit status or example:\n%s", args, text)
		}
	}
	for _, args := range [][]string{{"-nosuchflag"}, {"quarantine", "list", "-nosuchflag"}} {
		var out, errs bytes.Buffer
		if code := run(args, &out, &errs); code != 2 || strings.Count(errs.String(), "-nosuchflag") != 1 ||
			strings.Count(errs.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q: want 2 and the error once, on one line", args, code, errs.String())
		}
	}
}
