package testsvc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// RBLZone is one zone rbldnsd serves: a name, a dataset type (ip4set,
// ip6trie, dnset, ...) and the dataset's text.
type RBLZone struct {
	Name string
	Type string
	Data string
}

// RBLDNSD is a running rbldnsd on a loopback UDP port (rbldnsd has no TCP
// mode).
type RBLDNSD struct {
	Addr string // "127.0.0.1:port"
	Dir  string // the zone files

	out lockedBuffer
}

// lockedBuffer collects a process's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartRBLDNSD starts rbldnsd serving zones on a free loopback port and
// waits until it answers. It is stopped when the test ends.
func StartRBLDNSD(t testing.TB, zones ...RBLZone) *RBLDNSD {
	t.Helper()
	Integration(t)
	bin := LookPath(t, "rbldnsd", "apt-get install -y rbldnsd", "/usr/sbin")
	// rbldnsd refuses to run as root and drops to a user that must read
	// the zone files: a world-readable directory of its own.
	dir, err := os.MkdirTemp("", "rbldnsd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var args []string
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	port := FreeUDPAndTCPPort(t)
	args = append(args, "-n", "-q", "-4", "-c", "0", "-w", dir, "-b", "127.0.0.1/"+strconv.Itoa(port))
	for i, z := range zones {
		file := fmt.Sprintf("zone%d", i)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(z.Data), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, z.Name+":"+z.Type+":"+file)
	}
	s := &RBLDNSD{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = &s.out
	cmd.Stderr = &s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rbldnsd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if len(zones) == 0 {
		return s
	}
	// Ready when the first zone answers anything at all.
	probe := new(dns.Msg)
	probe.SetQuestion(dns.Fqdn("probe."+zones[0].Name), dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("rbldnsd exited: %v: %s", err, s.output())
		default:
		}
		if _, _, err := c.Exchange(probe, s.Addr); err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("rbldnsd did not answer on %s: %s", s.Addr, s.output())
		}
		time.Sleep(20 * time.Millisecond) // the port refuses until rbldnsd has bound it
	}
}

func (s *RBLDNSD) output() string { return s.out.String() }
