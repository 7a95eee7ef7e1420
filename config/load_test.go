package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules"
)

// route sends one message through s and returns the reply code.
func route(t *testing.T, s *System, body string) int {
	t.Helper()
	ctx := context.Background()
	tx := s.Filters.Pipeline.Begin(filter.Envelope{})
	defer tx.Close()
	tx.Mail(ctx, "a@example.org")
	tx.Rcpt(ctx, "b@example.net")
	if _, err := tx.Data(ctx, strings.NewReader("From: a@example.org\r\nSubject: x\r\n\r\n"+body+"\r\n")); err != nil {
		t.Fatal(err)
	}
	return s.Router.Route(ctx, tx).Code
}

// Build returns while the rules are still loading (a rule file on a FIFO
// nobody has written blocks the load): the System is not ready, says
// "rules: loading", and tempfails mail; once the file arrives it is ready
// and filters with the loaded rule.
func TestBuildLoadsRulesInBackground(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "slow.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	c := withoutSA()
	c.DataDir = filepath.Join(dir, "data")
	c.Rules.Files = []string{fifo}
	s, err := Build(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	err = s.Ready()
	if !errors.Is(err, rules.ErrLoading) || !errors.Is(err, filter.ErrNotReady) || !strings.Contains(err.Error(), "rules: loading") {
		t.Fatalf("Ready while loading: %v", err)
	}
	for range 2 {
		if code := route(t, s, "hello"); code != 451 {
			t.Fatalf("mail while the rules load: %d, want 451", code)
		}
	}
	if s.Spool.Len() != 0 {
		t.Fatalf("%d messages queued before the rules were loaded", s.Spool.Len())
	}

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("rules:\n  - name: SLOW_MARKER\n    kind: body\n    literal: \"slow-marker\"\n    score: 20\n")
	w.Close()
	if err := s.Filters.WaitRules(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready after the load: %v", err)
	}
	if code := route(t, s, "hello"); code != 250 {
		t.Errorf("clean mail after the load: %d, want 250", code)
	}
	if code := route(t, s, "slow-marker"); code/100 != 5 {
		t.Errorf("mail hitting the loaded rule: %d, want 5xx", code)
	}
}

// A first load that fails keeps the System up and not ready, saying why;
// a reload once the file is fixed makes it ready.
func TestBuildFirstLoadFails(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	writeTestFile(t, file, "rules:\n  - name: BROKEN\n    kind: body\n    regex: \"(\"\n")
	c := withoutSA()
	c.DataDir = filepath.Join(dir, "data")
	c.Rules.Files = []string{file}
	s, err := Build(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Filters.WaitRules(context.Background()); err == nil {
		t.Fatal("a broken rule file loaded")
	}
	err = s.Ready()
	if !errors.Is(err, rules.ErrNotReady) || errors.Is(err, rules.ErrLoading) || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("Ready after a failed load: %v", err)
	}
	if code := route(t, s, "hello"); code != 451 {
		t.Fatalf("mail after a failed load: %d, want 451", code)
	}
	if _, failed, _ := s.Filters.Rules.Reloads(); failed != 1 {
		t.Errorf("failed loads counted: %d, want 1", failed)
	}

	writeTestFile(t, file, "rules:\n  - name: FIXED\n    kind: body\n    literal: \"x-fixed\"\n    score: 1\n")
	if err := s.Filters.Rules.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready after the fixing reload: %v", err)
	}
	if code := route(t, s, "hello"); code != 250 {
		t.Errorf("mail after the fixing reload: %d, want 250", code)
	}
}

// BuildFilters (the scan CLI) loads before it returns: ready at once.
func TestBuildFiltersLoadsAtOnce(t *testing.T) {
	f, err := BuildFilters(context.Background(), withoutSA(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Pipeline.Ready(); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitRules(context.Background()); err != nil {
		t.Fatal(err)
	}
}
