package config

import (
	"strings"
	"testing"
)

func TestDefaultParses(t *testing.T) {
	c := Default()
	if c.SMTP.Listen != "127.0.0.1:2525" || c.Relay.Routes["*"].Hosts[0] != "127.0.0.1:2526" || c.Admin.Listen != "127.0.0.1:8025" {
		t.Errorf("default: %+v %+v %+v", c.SMTP, c.Relay, c.Admin)
	}
	if !c.Archive.Enabled || !c.Rules.Default || len(c.AV.Clamd)+len(c.DNS.DNSBL) != 0 {
		t.Errorf("default filters: archive %v rules %v", c.Archive.Enabled, c.Rules.Default)
	}
	if err := c.Check(); err != nil {
		t.Errorf("default does not check: %v", err)
	}
}

func TestUnknownKeyNamesLine(t *testing.T) {
	_, err := Parse("x.yaml", []byte("smtp:\n  listen: 127.0.0.1:1\n  lisen: typo\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("unknown key: %v, want an error naming line 3 and the key", err)
	}
}

func TestFileOverridesDefault(t *testing.T) {
	c, err := Parse("x.yaml", []byte("smtp:\n  listen: 127.0.0.1:9\nqueue:\n  max_depth: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Listen != "127.0.0.1:9" || c.Queue.MaxDepth != 5 || c.SMTP.MaxPerIP != 20 || !c.Rules.Default {
		t.Errorf("merged: %+v %+v", c.SMTP, c.Queue)
	}
}

func TestCheckRefuses(t *testing.T) {
	for _, y := range []string{
		"dns:\n  dnsbl: [zen]\n",
		"av:\n  mode: most\n",
		"queue:\n  backend: kafka\n",
		"queue:\n  backend: jetstream\n",
		"queue:\n  bounce: maybe\n",
		"relay:\n  tls: sometimes\n",
		"smtp:\n  tls_cert: a.pem\n",
		"smtp:\n  listen: \"\"\n",
		"data_dir: \"\"\n",
		"av:\n  backups: [nope]\n",
	} {
		c, err := Parse("x.yaml", []byte(y))
		if err != nil {
			t.Fatalf("%q: %v", y, err)
		}
		if err := c.Check(); err == nil {
			t.Errorf("%q: Check accepted it", y)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	b, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("printed.yaml", b)
	if err != nil {
		t.Fatalf("printed configuration does not parse: %v\n%s", err, b)
	}
	if c.SMTP != Default().SMTP || c.Queue != Default().Queue {
		t.Errorf("round trip changed the configuration")
	}
	// An unset ban list means the library's defaults; printed as [] and read
	// back it would ban nothing (an executable in a zip went through).
	if a := c.Archive; a.BannedExtensions != nil || a.BannedTypes != nil {
		t.Errorf("round trip turned the default bans into empty lists: %q %q", a.BannedExtensions, a.BannedTypes)
	}
}

func TestMapsMergeListsReplace(t *testing.T) {
	c, err := Parse("x.yaml", []byte("relay:\n  routes:\n    example.com: {hosts: [\"10.0.0.1:25\"]}\narchive:\n  banned_extensions: [xyz]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Relay.Routes) != 2 || c.Relay.Routes["*"].Hosts[0] != "127.0.0.1:2526" || c.Relay.Routes["example.com"].Hosts[0] != "10.0.0.1:25" {
		t.Errorf("routes %v: want the default * and example.com", c.Relay.Routes)
	}
	if len(c.Archive.BannedExtensions) != 1 {
		t.Errorf("banned_extensions %v: want the file's list only", c.Archive.BannedExtensions)
	}
}
