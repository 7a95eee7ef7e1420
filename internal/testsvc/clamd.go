package testsvc

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClamavInstall installs clamd and the test files its signature DB is made of.
const ClamavInstall = "apt-get install -y clamav-daemon clamav-testfiles"

// ClamavTestFiles is where Debian's clamav-testfiles puts clam.exe, clam.zip …
const ClamavTestFiles = "/usr/share/clamav-testfiles"

// Signature names of the generated database.
const (
	EicarSignature   = "Eicar-Test-Signature"
	ClamExeSignature = "Clamav.Test.File-6"
)

// Eicar returns the EICAR test string. It is assembled from pieces so that
// no file in the repository is itself detected by a scanner.
func Eicar() []byte {
	parts := []string{`X5O!P%@AP[4\PZX54(P^)7CC)7}$`, `EICAR-STANDARD-`, `ANTIVIRUS-TEST-`, `FILE!$H+H*`}
	return []byte(strings.Join(parts, ""))
}

// ClamavFile returns one of clamav-testfiles' files (clam.exe, clam.zip …),
// or calls Missing.
func ClamavFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ClamavTestFiles, name))
	if err != nil {
		Missing(t, "clamav-testfiles", ClamavInstall)
	}
	return b
}

// ClamdOptions tune a test clamd.
type ClamdOptions struct {
	// StreamMaxLength is clamd's INSTREAM limit in bytes; 0 means 25 MiB.
	StreamMaxLength int64
	// MaxFileSize is clamd's MaxFileSize (and MaxScanSize) in bytes, with
	// AlertExceedsMax on; 0 means clamd's defaults.
	MaxFileSize int64
	// Silent turns AlertExceedsMax off: clamd then answers OK for what
	// exceeds its limits, unscanned (its default behaviour).
	Silent bool
	// ExtraDB are more signature files for the database directory, by
	// file name ("marker.ndb") and content.
	ExtraDB map[string]string
}

// Clamd is a running clamd on a loopback TCP port and a unix socket.
type Clamd struct {
	Addr   string // "127.0.0.1:PORT"
	Socket string // unix socket path
	DBDir  string // the generated signature database, for clamscan -d
	Dir    string // the temp dir holding config, DB and socket
	Conf   string // the clamd.conf, usable by clamdscan --config-file

	daemon
}

var (
	sharedMu    sync.Mutex
	sharedClamd *Clamd
)

// SharedClamd returns one clamd per test binary with default options,
// started on first use. Call StopShared from TestMain after m.Run; a clamd
// left running dies with its parent anyway (Pdeathsig).
func SharedClamd(t testing.TB) *Clamd {
	t.Helper()
	Integration(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedClamd != nil && sharedClamd.alive() {
		return sharedClamd
	}
	dir, err := os.MkdirTemp("", "testsvc-clamd-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := startClamd(t, dir, ClamdOptions{})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	sharedClamd = c
	return c
}

// StopShared stops the clamd (and c-icap) started by SharedClamd and
// SharedICAP.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedICAP != nil {
		sharedICAP.Stop()
		os.RemoveAll(sharedICAP.Dir)
		sharedICAP = nil
	}
	if sharedClamd != nil {
		sharedClamd.Stop()
		os.RemoveAll(sharedClamd.Dir)
		sharedClamd = nil
	}
}

// StartClamd starts a clamd of the test's own, stopped in t.Cleanup.
func StartClamd(t testing.TB, opts ClamdOptions) *Clamd {
	t.Helper()
	Integration(t)
	c, err := startClamd(t, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// WriteClamDB writes the test signature database (test.hdb) into dir: the
// EICAR string and every clam*.exe of clamav-testfiles, by MD5.
func WriteClamDB(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(ClamavTestFiles, "clam.exe")); err != nil {
		Missing(t, "clamav-testfiles", ClamavInstall)
	}
	var b strings.Builder
	line := func(data []byte, name string) {
		sum := md5.Sum(data)
		fmt.Fprintf(&b, "%s:%d:%s\n", hex.EncodeToString(sum[:]), len(data), name)
	}
	line(Eicar(), EicarSignature)
	exe, err := os.ReadFile(filepath.Join(ClamavTestFiles, "clam.exe"))
	if err != nil {
		t.Fatal(err)
	}
	line(exe, ClamExeSignature)
	if err := os.WriteFile(filepath.Join(dir, "test.hdb"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func startClamd(t testing.TB, dir string, opts ClamdOptions) (*Clamd, error) {
	t.Helper()
	bin := LookPath(t, "clamd", ClamavInstall, "/usr/sbin")
	db := filepath.Join(dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		return nil, err
	}
	WriteClamDB(t, db)
	for name, content := range opts.ExtraDB {
		if err := os.WriteFile(filepath.Join(db, filepath.Base(name)), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if opts.StreamMaxLength == 0 {
		opts.StreamMaxLength = 25 << 20
	}
	c := &Clamd{Socket: filepath.Join(dir, "clamd.sock"), DBDir: db, Dir: dir, Conf: filepath.Join(dir, "clamd.conf")}
	port := FreePort(t)
	c.Addr = "127.0.0.1:" + strconv.Itoa(port)
	conf := strings.Join([]string{
		"Foreground yes",
		"LogSyslog no",
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"LogVerbose no",
		"DatabaseDirectory " + db,
		"LocalSocket " + c.Socket,
		"TCPSocket " + strconv.Itoa(port),
		"TCPAddr 127.0.0.1",
		"StreamMaxLength " + strconv.FormatInt(opts.StreamMaxLength, 10),
		"MaxThreads 4",
		"ReadTimeout 30",
		"CommandReadTimeout 30",
		"IdleTimeout 60",
		"MaxConnectionQueueLength 64",
		"SelfCheck 0",
		"Bytecode no",
	}, "\n") + "\n"
	if opts.Silent {
		conf += "AlertExceedsMax no\n"
	} else {
		conf += "AlertExceedsMax yes\n"
	}
	if opts.MaxFileSize > 0 {
		n := strconv.FormatInt(opts.MaxFileSize, 10)
		conf += "MaxFileSize " + n + "\nMaxScanSize " + n + "\n"
	}
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := c.start(filepath.Join(dir, "clamd.out"), c.Ping, bin, "--config-file="+c.Conf); err != nil {
		return nil, fmt.Errorf("clamd: %w", err)
	}
	return c, nil
}

// daemon is a started process in its own process group (killed with the
// test binary by Pdeathsig), its output in a file.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs bin and waits until ready answers nil (60 s at most).
func (d *daemon) start(outPath string, ready func() error, bin string, args ...string) error {
	d.done = make(chan struct{})
	d.cmd = exec.Command(bin, args...)
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		out.Close()
		return err
	}
	go func() { d.cmd.Wait(); out.Close(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-d.done:
			log, _ := os.ReadFile(outPath)
			return fmt.Errorf("exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return fmt.Errorf("not ready within 60s: %w", err)
		}
	}
}

func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Kill kills the process group at once (SIGKILL), as a crash would.
func (d *daemon) Kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// Stop stops the process group and waits for it to exit.
func (d *daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.Kill()
	}
}

// Ping sends PING over TCP and expects PONG.
func (c *Clamd) Ping() error {
	conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		return err
	}
	if strings.TrimRight(line, "\x00") != "PONG" {
		return fmt.Errorf("clamd answered %q", line)
	}
	return nil
}

// Reload asks clamd to reload its databases (after a test changed the
// files in DBDir) and returns when clamd has acknowledged. clamd loads
// the new signatures in the background and scans with the old ones
// meanwhile: wait for a probe scan that tells them apart.
func (c *Clamd) Reload() error {
	conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("zRELOAD\x00")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		return err
	}
	if strings.TrimRight(line, "\x00") != "RELOADING" {
		return fmt.Errorf("clamd answered RELOAD with %q", line)
	}
	return nil
}
