package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-mail/portcullis/config"
)

// The milter's defaults differ from the gateway's; a file or a flag that
// names data_dir or admin.listen wins.
func TestDefaultsDifferFromGateway(t *testing.T) {
	gw := config.Default()
	if DefaultDataDir == gw.DataDir || DefaultAdmin == gw.Admin.Listen {
		t.Fatalf("milter defaults %s %s equal the gateway's", DefaultDataDir, DefaultAdmin)
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := write("other.yaml", "quarantine:\n  retention: 24h\n")
	both := write("both.yaml", "data_dir: ./portcullis-data\nadmin:\n  listen: 127.0.0.1:8025\n")
	for _, c := range []struct {
		name            string
		o               options
		wantDir, wantAd string
	}{
		{"no file", options{}, DefaultDataDir, DefaultAdmin},
		{"a file that sets neither", options{config: other}, DefaultDataDir, DefaultAdmin},
		{"a file that sets both", options{config: both}, "./portcullis-data", "127.0.0.1:8025"},
		{"flags", options{config: other, data: "/var/x", admin: "127.0.0.1:9"}, "/var/x", "127.0.0.1:9"},
		{"admin off", options{admin: "off"}, DefaultDataDir, ""},
	} {
		cfg, err := load(c.o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.DataDir != c.wantDir || cfg.Admin.Listen != c.wantAd {
			t.Errorf("%s: data %q admin %q, want %q %q", c.name, cfg.DataDir, cfg.Admin.Listen, c.wantDir, c.wantAd)
		}
	}
}
