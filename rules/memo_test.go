package rules

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The same sources compile once per process: a second engine, or a
// reload of unchanged files, gets the same set; a changed file, other
// limits or a DetectType function compile anew.
func TestCompiledSetReused(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "more.yaml")
	main := filepath.Join(dir, "main.yaml")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(inc, "rules:\n  - {name: MEMO_B, kind: body, literal: bbb, score: 1}\n")
	write(main, "rules:\n  - {name: MEMO_A, kind: body, literal: aaa, score: 1}\n")
	load := func(cfg Config) *Set {
		t.Helper()
		e := New(cfg)
		if err := e.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		return e.Current()
	}
	cfg := Config{Files: []string{main, inc}}
	first := load(cfg)
	if load(cfg) != first {
		t.Fatal("a second engine on the same files compiled the set again")
	}
	write(inc, "rules:\n  - {name: MEMO_B, kind: body, literal: ccc, score: 1}\n")
	changed := load(cfg)
	if changed == first {
		t.Fatal("a file changed and the old set came back")
	}
	if load(Config{Files: []string{main, inc}, Limits: Limits{MaxScanBytes: 1000}}) == changed {
		t.Fatal("other limits and the same set came back")
	}
	if load(Config{Files: []string{main, inc}, DetectType: func([]byte, string) string { return "" }}) == changed {
		t.Fatal("a DetectType function and a remembered set came back")
	}
}
