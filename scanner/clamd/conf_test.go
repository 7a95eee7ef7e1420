package clamd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
)

func TestParseLimits(t *testing.T) {
	cases := []struct {
		conf string
		want Limits
		max  int64
	}{
		{"", DefaultLimits(), 100 << 20},
		{"# comment\nStreamMaxLength 25M\nMaxFileSize 25M\nMaxScanSize 100M\n", Limits{25 << 20, 25 << 20, 100 << 20, false}, 25 << 20},
		{"MaxFileSize 64k\nAlertExceedsMax yes\n", Limits{100 << 20, 64 << 10, 400 << 20, true}, 64 << 10},
		{"maxscansize\t1000\nStreamMaxLength 2G\nMaxFileSize 0\n", Limits{2 << 30, 0, 1000, false}, 1000},
		{"StreamMaxLength 0\nMaxFileSize 0\nMaxScanSize 0\n", Limits{}, 0},
		{"MaxFileSize \"8M\"\nAlertExceedsMax false\nLogFile /x\nExample\n", Limits{100 << 20, 8 << 20, 400 << 20, false}, 8 << 20},
	}
	for _, tc := range cases {
		got, err := parseLimits(strings.NewReader(tc.conf), "t")
		if err != nil || got != tc.want || got.Max() != tc.max {
			t.Errorf("%q: %+v (max %d) %v, want %+v (max %d)", tc.conf, got, got.Max(), err, tc.want, tc.max)
		}
	}
	for _, bad := range []string{"MaxFileSize lots\n", "MaxFileSize -1\n", "StreamMaxLength 99999999999999999999\n", "MaxScanSize 10T\n", "AlertExceedsMax perhaps\n", "MaxFileSize\n"} {
		if _, err := parseLimits(strings.NewReader(bad), "t"); !errors.Is(err, ErrConf) {
			t.Errorf("%q: %v, want ErrConf", bad, err)
		}
	}
	// A line longer than the scanner takes is an error, not a silent end.
	long := "MaxFileSize 1K\n# " + strings.Repeat("x", 70<<10) + "\nMaxFileSize 2K\n"
	if _, err := parseLimits(strings.NewReader(long), "t"); !errors.Is(err, ErrConf) {
		t.Errorf("overlong line: %v, want ErrConf", err)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "clamd.conf")
	os.WriteFile(path, []byte("StreamMaxLength 10M\nMaxFileSize 5M\n"), 0o644)
	for _, tc := range []struct {
		cfg  Config
		want int64
	}{
		{Config{Addr: "127.0.0.1:1"}, DefaultMaxSize},
		{Config{Addr: "127.0.0.1:1", ConfigFile: path}, 5 << 20},
		{Config{Addr: "127.0.0.1:1", ConfigFile: path, MaxSize: 1000}, 1000},
		{Config{Addr: "127.0.0.1:1", MaxSize: -1}, 0},
	} {
		c, err := New(tc.cfg)
		if err != nil || c.ScanLimit() != tc.want {
			t.Errorf("%+v: limit %v %v, want %d", tc.cfg, c.ScanLimit(), err, tc.want)
		}
	}
	os.WriteFile(path, []byte("MaxFileSize big\n"), 0o644)
	if _, err := New(Config{Addr: "127.0.0.1:1", ConfigFile: path}); !errors.Is(err, ErrConf) {
		t.Errorf("bad conf: %v", err)
	}
	if _, err := New(Config{Addr: "127.0.0.1:1", ConfigFile: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing conf accepted")
	}
}

// clamd without AlertExceedsMax answers OK for a stream beyond
// MaxFileSize that it never scanned; the client, knowing the limit from
// clamd.conf, reports a partial scan instead.
func TestRealSilentMaxFileSize(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{MaxFileSize: 64 << 10, Silent: true})
	big := append(bytes.Repeat([]byte("A"), 100<<10), testsvc.Eicar()...)

	naive := newClient(t, Config{Addr: d.Addr, MaxSize: -1})
	if res, err := naive.Scan(t.Context(), bytes.NewReader(big)); err != nil || res.Infected() {
		t.Fatalf("clamd no longer passes big files unscanned (%v %v): revisit the size check", res, err)
	}
	c := newClient(t, Config{Addr: d.Addr, ConfigFile: d.Conf})
	if got := c.ScanLimit(); got != 64<<10 {
		t.Fatalf("limit from %s: %d", d.Conf, got)
	}
	if res, err := c.Scan(t.Context(), bytes.NewReader(big)); !errors.Is(err, scanner.ErrSizeLimit) {
		t.Fatalf("over MaxFileSize, AlertExceedsMax off: %v %v, want ErrSizeLimit", res, err)
	}
	if res, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, 64<<10))); err != nil || res.Infected() {
		t.Fatalf("at MaxFileSize: %v %v", res, err)
	}
	if res, err := c.Scan(t.Context(), bytes.NewReader(testsvc.Eicar())); err != nil || !res.Infected() {
		t.Fatalf("small eicar: %v %v", res, err)
	}

	// Through Multi, also when the client's own check is off: the
	// engine's limit makes any answer about more bytes partial.
	for _, e := range []scanner.Engine{c, scanner.WithLimit(naive, 64<<10)} {
		m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{e}})
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.Scan(t.Context(), bytes.NewReader(big), int64(len(big)))
		if err != nil || !v.Partial() || v.Clean() || v.Infected {
			t.Fatalf("multi over the limit: %+v %v, want partial", v, err)
		}
		v, err = m.Scan(t.Context(), bytes.NewReader(testsvc.Eicar()), int64(len(testsvc.Eicar())))
		if err != nil || v.Partial() || !v.Infected {
			t.Fatalf("multi small eicar: %+v %v", v, err)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	for _, s := range []string{"MaxFileSize 25M\nStreamMaxLength 100M\n", "MaxScanSize 1k\nAlertExceedsMax yes\n", "# x\n\nMaxFileSize 0\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lim, err := parseLimits(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		if lim.StreamMaxLength < 0 || lim.MaxFileSize < 0 || lim.MaxScanSize < 0 || lim.Max() < 0 {
			t.Fatalf("negative limit %+v", lim)
		}
		if m := lim.Max(); m != 0 && ((lim.StreamMaxLength != 0 && m > lim.StreamMaxLength) || (lim.MaxFileSize != 0 && m > lim.MaxFileSize) || (lim.MaxScanSize != 0 && m > lim.MaxScanSize)) {
			t.Fatalf("max %d above a limit %+v", m, lim)
		}
	})
}
