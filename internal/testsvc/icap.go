package testsvc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

	cmd  *exec.Cmd
	done chan struct{}
}

var sharedICAP *ICAP

// SharedICAP returns one c-icap per test binary, backed by SharedClamd.
// StopShared stops both.
func SharedICAP(t testing.TB) *ICAP {
	t.Helper()
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
	s, err := startICAP(t, dir, c)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	sharedICAP = s
	return s
}

// icapModuleDirs are where Debian puts c-icap's modules and services.
var icapModuleDirs = []string{"/usr/lib/x86_64-linux-gnu/c_icap", "/usr/lib/aarch64-linux-gnu/c_icap", "/usr/lib/c_icap"}

func startICAP(t testing.TB, dir string, c *Clamd) (*ICAP, error) {
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
	s := &ICAP{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, Service: "virus_scan", done: make(chan struct{})}
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
		"virus_scan.MaxObjectSize 100M",
		"virus_scan.DefaultEngine clamd",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "c-icap.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "-N", "-f", confPath)
	out, err := os.Create(filepath.Join(dir, "c-icap.out"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	go func() { s.cmd.Wait(); out.Close(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := s.options(); err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "c-icap.out"))
			slog, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return nil, fmt.Errorf("c-icap exited: %s %s", log, slog)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("c-icap did not answer OPTIONS within 60s")
		}
	}
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

func (s *ICAP) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *ICAP) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}
