// Package testsvc starts the real components that integration tests run
// against (clamd, c-icap, rbldnsd, nats-server) on free loopback ports.
//
// A test whose component is missing skips with the command that installs
// it when run by hand, and fails when CI=true: a skip in CI would hide a
// missing install step.
package testsvc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// MissingReport is the file Missing appends one line to for every missing
// component, so that scripts/test.sh can list them after a run: go test
// hides a passing package's skip messages unless -v is given.
func MissingReport() string {
	if p := os.Getenv("PORTCULLIS_MISSING_REPORT"); p != "" {
		return p
	}
	return filepath.Join(os.TempDir(), "portcullis-missing-components.txt")
}

// Missing skips the test (by hand) or fails it (under CI=true) because a
// component is not installed; install is the command that installs it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if f, err := os.OpenFile(MissingReport(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(f, "%s is missing (%s): install it with: %s\n", what, t.Name(), install)
		f.Close()
	}
	if InCI() {
		t.Fatalf("%s is missing (CI=true): install it with: %s", what, install)
	}
	t.Skipf("%s is missing; install it with: %s", what, install)
}

// Integration marks a test that runs a real component: `go test -short`
// skips it, so the unit tests alone give a quick answer.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped under -short")
	}
}

// LookPath returns the path of a program, or calls Missing.
func LookPath(t testing.TB, name, install string, dirs ...string) string {
	t.Helper()
	for _, d := range dirs {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, install)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPAndTCPPort returns a loopback port free for both UDP and TCP (DNS
// servers listen on both).
func FreeUDPAndTCPPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free UDP+TCP port")
	return 0
}
