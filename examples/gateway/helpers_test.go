package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// binary is the gateway, built on first use (integration tests only, so
// that -short stays quick) into a directory removed after the tests.
var (
	binary    string
	buildDir  string
	buildOnce sync.Once
	buildErr  error
)

func buildBinary(t testing.TB) string {
	t.Helper()
	testsvc.Integration(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "portcullis-gateway-test-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "gateway")
		if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is one running gateway process.
type proc struct {
	*testsvc.Proc
	t     testing.TB
	smtp  string // the SMTP address from the start-up line
	admin string
}

// startGateway runs the binary with args and waits for its start-up line.
func startGateway(t testing.TB, args ...string) *proc {
	t.Helper()
	p, err := tryStart(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tryStart(t testing.TB, args ...string) (*proc, error) {
	p, err := tryListen(t, args...)
	if err != nil {
		return nil, err
	}
	// The gateway listens while its rules load: tests that send at once
	// wait for them (the readiness tests use tryListen).
	if strings.Contains(field(p.lineWith("portcullis gateway started"), "ready"), "rules: loading") {
		if _, ok := p.waitLine("rules: first load done", 60*time.Second); !ok {
			p.kill()
			return nil, fmt.Errorf("gateway rules did not load:\n%s", p.output())
		}
	}
	return p, nil
}

// tryListen runs the binary with args and waits for its start-up line
// only: its rules may still be loading.
func tryListen(t testing.TB, args ...string) (*proc, error) {
	tp, err := testsvc.StartProc(exec.Command(buildBinary(t), args...))
	if err != nil {
		return nil, err
	}
	p := &proc{Proc: tp, t: t}
	line, ok := p.waitLine("portcullis gateway started", 30*time.Second)
	if !ok {
		p.kill()
		return nil, fmt.Errorf("gateway did not start:\n%s", p.output())
	}
	p.smtp, p.admin = field(line, "smtp"), field(line, "admin")
	t.Cleanup(p.kill)
	return p, nil
}

// waitLine waits for a log line containing s.
func (p *proc) waitLine(s string, timeout time.Duration) (string, bool) {
	return p.WaitLine(s, timeout)
}

func (p *proc) output() string { return p.Output(0) }

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() { p.Kill() }

// signal sends sig.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	code, ok := p.ExitCode(timeout)
	if !ok {
		p.t.Fatalf("gateway did not exit within %v:\n%s", timeout, p.output())
	}
	return code
}

// field returns key's value in a slog text line.
func field(line, key string) string { return testsvc.Field(line, key) }

// result is the outcome of one SMTP transaction: the code of the reply
// that ended it (250 for an accepted message) and its text.
type result struct {
	code int
	enh  smtp.EnhancedCode
	text string
	err  error // a non-SMTP error (connection refused, reset)
}

// sendFrom sends one message from the local address (nil: any).
func sendFrom(local net.Addr, addr, from string, to []string, data string) result {
	d := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return result{err: err}
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	asResult := func(err error) result {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return result{code: se.Code, enh: se.EnhancedCode, text: se.Message}
		}
		return result{err: err}
	}
	if err := c.Hello("client.test"); err != nil {
		return asResult(err)
	}
	if err := c.Mail(from, nil); err != nil {
		return asResult(err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return asResult(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return asResult(err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		return asResult(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return asResult(err)
	}
	c.Quit()
	return result{code: 250, enh: smtp.EnhancedCode{2, 0, 0}, text: resp.StatusText}
}

func send(addr, data string) result {
	return sendFrom(nil, addr, "sender@example.org", []string{"rcpt@example.net"}, data)
}

func message(subject, body string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\nSubject: " + subject + "\r\n" +
		"X-Spam-Status: No, forged by the sender\r\n\r\n" + body + "\r\n"
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lineWith returns the first log line containing s so far ("" if none).
func (p *proc) lineWith(s string) string { return p.LineWith(s) }
