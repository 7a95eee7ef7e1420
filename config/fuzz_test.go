package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
