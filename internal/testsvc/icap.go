package testsvc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ICAPInstall installs c-icap and its antivirus service.
const ICAPInstall = "apt-get install -y c-icap libc-icap-mod-virus-scan clamav-daemon clamav-testfiles"

// ICAP is a running c-icap whose virus_scan service asks a test clamd.
type ICAP struct {
	Addr    string // "127.0.0.1:PORT"
	URL     string // "icap://127.0.0.1:PORT/virus_scan"
	Dir     string
	Service string // "virus_scan"

	daemon
}

var sharedICAP *ICAP

// SharedICAP returns one c-icap per test binary, backed by SharedClamd.
// StopShared stops both.
func SharedICAP(t testing.TB) *ICAP {
	t.Helper()
	Integration(t)
	c := SharedClamd(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedICAP != nil && sharedICAP.alive() {
		return sharedICAP
	}
	dir, err := os.MkdirTemp("", "testsvc-icap-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := startICAP(t, dir, c, ICAPOptions{})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	sharedICAP = s
	return s
}

// ICAPOptions tune a test c-icap.
type ICAPOptions struct {
	// MaxObjectSize is virus_scan.MaxObjectSize, e.g. "4K"; "" means 100M.
	MaxObjectSize string
}

// StartICAP starts a c-icap of the test's own in front of clamd c,
// stopped in t.Cleanup.
func StartICAP(t testing.TB, c *Clamd, opts ICAPOptions) *ICAP {
	t.Helper()
	Integration(t)
	s, err := startICAP(t, t.TempDir(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// icapModuleDirs are where Debian puts c-icap's modules and services.
var icapModuleDirs = []string{"/usr/lib/x86_64-linux-gnu/c_icap", "/usr/lib/aarch64-linux-gnu/c_icap", "/usr/lib/c_icap"}

func startICAP(t testing.TB, dir string, c *Clamd, opts ICAPOptions) (*ICAP, error) {
	if opts.MaxObjectSize == "" {
		opts.MaxObjectSize = "100M"
	}
	t.Helper()
	bin := LookPath(t, "c-icap", ICAPInstall, "/usr/bin")
	modDir := ""
	for _, d := range icapModuleDirs {
		if _, err := os.Stat(filepath.Join(d, "virus_scan.so")); err == nil {
			modDir = d
			break
		}
	}
	if modDir == "" {
		Missing(t, "c-icap virus_scan module", ICAPInstall)
	}
	port := FreePort(t)
	s := &ICAP{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, Service: "virus_scan"}
	s.URL = "icap://" + s.Addr + "/" + s.Service
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	conf := strings.Join([]string{
		"PidFile " + filepath.Join(dir, "c-icap.pid"),
		"CommandsSocket " + filepath.Join(dir, "c-icap.ctl"),
		"Timeout 60",
		"MaxKeepAliveRequests 0",
		"KeepAliveTimeout 60",
		"StartServers 1",
		"MaxServers 1",
		"MinSpareThreads 2",
		"MaxSpareThreads 8",
		"ThreadsPerChild 8",
		"MaxRequestsPerChild 0",
		"Port 127.0.0.1:" + strconv.Itoa(port),
		"ServerName portcullis-test",
		"TmpDir " + tmp,
		"MaxMemObject 131072",
		"DebugLevel 1",
		"Pipelining on",
		"ModulesDir " + modDir,
		"ServicesDir " + modDir,
		"TemplateDir /usr/share/c_icap/templates/",
		"TemplateDefaultLanguage en",
		"ServerLog " + filepath.Join(dir, "server.log"),
		"AccessLog " + filepath.Join(dir, "access.log"),
		"Module common clamd_mod.so",
		"clamd_mod.ClamdSocket " + c.Socket,
		"Service virus_scan virus_scan.so",
		"virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE",
		"virus_scan.SendPercentData 0",
		"virus_scan.Allow204Responces on",
		"virus_scan.PassOnError off",
		"virus_scan.MaxObjectSize " + opts.MaxObjectSize,
		"virus_scan.DefaultEngine clamd",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "c-icap.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := s.start(filepath.Join(dir, "c-icap.out"), s.options, bin, "-N", "-f", confPath); err != nil {
		slog, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return nil, fmt.Errorf("c-icap: %w; server.log: %s", err, slog)
	}
	return s, nil
}

// options sends OPTIONS and expects 200.
func (s *ICAP) options() error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "OPTIONS %s ICAP/1.0\r\nHost: %s\r\nEncapsulated: null-body=0\r\n\r\n", s.URL, s.Addr)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "ICAP/1.0 200") {
		return fmt.Errorf("c-icap answered %q", line)
	}
	return nil
}
