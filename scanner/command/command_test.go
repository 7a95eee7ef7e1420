package command

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
)

func newEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestClamscan(t *testing.T) {
	bin := testsvc.LookPath(t, "clamscan", "apt-get install -y clamav clamav-testfiles")
	db := t.TempDir()
	testsvc.WriteClamDB(t, db)
	e := newEngine(t, Config{Path: bin, Args: []string{"--no-summary", "-d", db, "{}"}, Timeout: 2 * time.Minute})
	exe := testsvc.ClamavFile(t, "clam.zip")
	for _, tc := range []struct {
		name string
		data []byte
		sig  string
	}{
		{"eicar", testsvc.Eicar(), testsvc.EicarSignature},
		{"clam.zip", exe, testsvc.ClamExeSignature},
		{"clean", []byte("nothing to see"), ""},
	} {
		res, err := e.Scan(t.Context(), bytes.NewReader(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.sig == "" {
			if res.Infected() {
				t.Errorf("%s: %v", tc.name, res.Signatures)
			}
			continue
		}
		if len(res.Signatures) != 1 || !strings.HasPrefix(res.Signatures[0], tc.sig) {
			t.Errorf("%s: %v, want %s", tc.name, res.Signatures, tc.sig)
		}
	}
}

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scan.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	// The script judges by content: it greps the file it is given.
	p := script(t, `if grep -q BAD "$1"; then echo "$1: Bad.Thing FOUND"; exit 1; fi
if grep -q CORRUPT "$1"; then echo "cannot parse" >&2; exit 2; fi
if grep -q QUIET "$1"; then exit 1; fi
if grep -q ZERO "$1"; then echo "$1: Found.Anyway FOUND"; fi
exit 0
`)
	e := newEngine(t, Config{Path: p})
	cases := []struct {
		data  string
		sig   string
		isErr error
	}{
		{"hello", "", nil},
		{"a BAD file", "Bad.Thing", nil},
		{"QUIET", "(unnamed)", nil},
		{"ZERO exit, pattern matches", "Found.Anyway", nil},
		{"CORRUPT", "", scanner.ErrContent},
	}
	for _, tc := range cases {
		res, err := e.Scan(t.Context(), strings.NewReader(tc.data))
		if tc.isErr != nil {
			if !errors.Is(err, tc.isErr) || !strings.Contains(err.Error(), "cannot parse") {
				t.Errorf("%q: %v %v, want %v", tc.data, res, err, tc.isErr)
			}
			continue
		}
		if err != nil || strings.Join(res.Signatures, ",") != tc.sig {
			t.Errorf("%q: %v %v, want %q", tc.data, res.Signatures, err, tc.sig)
		}
	}
}

func TestCustomPatternAndArgs(t *testing.T) {
	p := script(t, `echo "VIRUS=Vendor.X file=$2"; exit 5`)
	e := newEngine(t, Config{Path: p, Args: []string{"--scan", "{}"}, Infected: []int{5}, Pattern: regexp.MustCompile(`VIRUS=(\S+)`)})
	res, err := e.Scan(t.Context(), strings.NewReader("x"))
	if err != nil || strings.Join(res.Signatures, ",") != "Vendor.X" {
		t.Fatalf("%v %v", res, err)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p := script(t, `sleep 60 & echo $! > `+pidFile+`
wait
`)
	e := newEngine(t, Config{Path: p, Timeout: 500 * time.Millisecond})
	start := time.Now()
	_, err := e.Scan(t.Context(), strings.NewReader("x"))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, scanner.ErrContent) {
		t.Fatalf("timeout: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSizeLimit(t *testing.T) {
	p := script(t, "exit 0")
	e := newEngine(t, Config{Path: p, MaxBytes: 100})
	if _, err := e.Scan(t.Context(), bytes.NewReader(make([]byte, 100))); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := e.Scan(t.Context(), bytes.NewReader(make([]byte, 101))); !errors.Is(err, scanner.ErrSizeLimit) {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestMissingProgram(t *testing.T) {
	e := newEngine(t, Config{Path: "/nonexistent/scanner"})
	_, err := e.Scan(t.Context(), strings.NewReader("x"))
	if err == nil || errors.Is(err, scanner.ErrContent) {
		t.Fatalf("missing program: %v, want an unavailability error", err)
	}
	if _, err := New(Config{Path: "x", Clean: []int{1}}); err == nil {
		t.Fatal("exit code 1 both clean and infected accepted")
	}
}
