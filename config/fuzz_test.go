package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// FuzzParse: any input either fails with an error or parses into a
// configuration that prints as YAML which parses back to the same print.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("smtp:\n  listen: 127.0.0.1:25\n"))
	f.Add([]byte("queue: {backend: jetstream, url: nats://x}\nrelay: {routes: {\"*\": {hosts: [a:1]}}}\n"))
	f.Add([]byte("policy:\n  on_limit: reject\n  timeout: 3s\n"))
	f.Add([]byte("av:\n  command: [{path: /bin/x, clean: [0], infected: [1]}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err != nil {
			return
		}
		_ = c.Check()
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not print: %v", err)
		}
		c2, err := Parse("printed.yaml", out)
		if err != nil {
			t.Fatalf("printed configuration does not parse: %v\n%s", err, out)
		}
		out2, err := c2.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("print is not stable:\n%s\n---\n%s", out, out2)
		}
	})
}

func TestLoadRefusesOversizedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte("# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a file over MaxFileBytes: %v", err)
	}
}

// defaultRun is the default pipeline FuzzDefaultPipeline runs and the
// default limits, built once per process (defaultFilters).
type defaultRun struct {
	f   *Filters
	lim filter.Limits
}

var defaultFilters = sync.OnceValues(func() (defaultRun, error) {
	f, err := BuildFilters(context.Background(), Default(), Options{})
	return defaultRun{f, Default().Limits.FilterLimits()}, err
})

// FuzzDefaultPipeline: no filter of the default pipeline (the archive
// inspector and the rules, SpamAssassin's included) panics on any
// message. The pipeline recovers a panic into a tempfail, so a message
// that makes a filter panic is deferred on every retry, and no other test
// would notice.
func FuzzDefaultPipeline(f *testing.F) {
	var files []string
	for _, g := range []string{"../testdata/*.eml", "../rules/default/corpus/*.eml", "../filter/testdata/mail/*/*"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, name := range files {
		if raw, err := os.ReadFile(name); err == nil && len(raw) <= 8<<10 {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 16<<10 {
			return
		}
		d, err := defaultFilters()
		if err != nil {
			t.Fatal(err)
		}
		fl := d.f
		before := fl.Pipeline.Panics()
		m := filter.NewMessageBytes(filter.Envelope{}, raw, d.lim)
		v := fl.Pipeline.CheckAll(context.Background(), m)
		if fl.Pipeline.Panics() != before {
			t.Fatalf("a filter panicked: %s %v", v.Action, v.Symbols)
		}
	})
}
