package config

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

func TestBuildFiltersEveryEngine(t *testing.T) {
	c, err := Parse("all.yaml", []byte(`
av:
  clamd: [127.0.0.1:1]
  icap: [icap://127.0.0.1:1/avscan]
  command:
    - {name: scan-cmd, path: /bin/true, pattern: "^(.+) FOUND$"}
  backups: [icap-1]
  mode: quorum
  quorum: 1
  guard: {window: 50}
  breaker: {failures: 2}
  cache: {entries: -1}
dns:
  resolvers: [127.0.0.1:1]
  dnsbl: [bl.test=3]
  uribl: [dbl.test]
rules:
  spamassassin: ""
`))
	if err != nil {
		t.Fatal(err)
	}
	f, err := BuildFilters(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := f.Names()
	for _, want := range []string{"archive", "av", "rules"} {
		if !slices.Contains(names, want) {
			t.Errorf("filters %v lack %s", names, want)
		}
	}
	if f.Scanner == nil || f.Lists == nil || f.Rules == nil || f.Inspector == nil {
		t.Errorf("handles: %+v", f)
	}
	if len(names) < 4 {
		t.Errorf("no DNS list filters in %v", names)
	}
}

func TestBuildFiltersRefusesBadRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	writeTestFile(t, path, "rules:\n  - name: X\n    kind: nonsense\n")
	c := withoutSA()
	c.Rules.Files = []string{path}
	if _, err := BuildFilters(context.Background(), c, Options{}); err == nil {
		t.Fatal("a broken rule file was accepted")
	}
}

// Build makes a System that routes mail to the queue, and a second Build
// on the same data_dir is refused.
func TestBuildSystem(t *testing.T) {
	c := withoutSA()
	c.DataDir = t.TempDir()
	s, err := Build(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Filters.WaitRules(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), c, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Build on one data_dir: %v", err)
	}
	routeOne(t, s)
	if s.Spool.Len() != 1 {
		t.Errorf("queue holds %d, want 1", s.Spool.Len())
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Closed: the lock is free again.
	s2, err := Build(context.Background(), c, Options{})
	if err != nil {
		t.Fatalf("Build after Close: %v", err)
	}
	s2.Close(context.Background())
}

func TestBuildJetStream(t *testing.T) {
	n := natstest.Start(t)
	c := withoutSA()
	c.DataDir = t.TempDir()
	c.Queue.Backend, c.Queue.URL = "jetstream", n.URL
	s, err := Build(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if s.Spool != nil {
		t.Error("a local spool with backend jetstream")
	}
	if err := s.Filters.WaitRules(context.Background()); err != nil {
		t.Fatal(err)
	}
	routeOne(t, s)
}

func routeOne(t *testing.T, s *System) {
	t.Helper()
	ctx := context.Background()
	tx := s.Filters.Pipeline.Begin(filter.Envelope{})
	defer tx.Close()
	tx.Mail(ctx, "a@example.org")
	tx.Rcpt(ctx, "b@example.net")
	if _, err := tx.Data(ctx, strings.NewReader("From: a@example.org\r\nSubject: x\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	if r := s.Router.Route(ctx, tx); r.Code != 250 {
		t.Fatalf("route: %v", r)
	}
}

// withoutSA is the default configuration without SpamAssassin's rules,
// for the tests of what those rules do not change: under the race
// detector they take 20-60 s to compile, each build. ExampleBuild,
// ExampleBuildFilters and the allocation test build the whole default.
func withoutSA() *Config {
	c := Default()
	c.Rules.SpamAssassin = ""
	return c
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clamd_config is read when the filters are built: a limit clamd.conf
// cannot express is refused, never taken as "no limit".
func TestBuildFiltersClamdConfig(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.conf"), filepath.Join(dir, "bad.conf")
	writeTestFile(t, good, "StreamMaxLength 25M\nMaxFileSize 10M\n")
	writeTestFile(t, bad, "MaxFileSize lots\n")
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.conf"): false} {
		c := withoutSA()
		c.AV.Clamd = []string{"127.0.0.1:1"}
		c.AV.ClamdConfig = path
		f, err := BuildFilters(context.Background(), c, Options{})
		if ok != (err == nil) {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
		if err == nil {
			f.Close()
		}
	}
}
