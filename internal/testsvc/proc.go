package testsvc

import (
	"bufio"
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a program a test runs and reads the log of: its standard error
// is kept line by line, and the test waits for a line rather than
// sleeping. The gateway tests and the drills run their gateways with it.
type Proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced when a line arrives
	done  chan struct{} // closed when the process has exited
	err   error         // its exit status, after done
}

// StartProc starts cmd (which must not have Stderr set) and reads its
// standard error. The process dies with the test binary (Pdeathsig), so a
// failed test leaves nothing running; callers still Kill it in Cleanup.
func StartProc(cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, grew: make(chan struct{}), done: make(chan struct{})}
	go p.read(stderr)
	return p, nil
}

func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

// WaitLine waits up to timeout for a log line containing s and returns
// it; false when the time is up or the process exited without one.
func (p *Proc) WaitLine(s string, timeout time.Duration) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], s) {
				l := p.lines[seen]
				p.mu.Unlock()
				return l, true
			}
		}
		grew := p.grew
		p.mu.Unlock()
		select {
		case <-grew:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if seen == n {
				return "", false
			}
		case <-deadline.C:
			return "", false
		}
	}
}

// LineWith returns the first log line so far containing s ("" if none).
func (p *Proc) LineWith(s string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// Count counts the log lines so far containing every one of subs.
func (p *Proc) Count(subs ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
next:
	for _, l := range p.lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// Output returns the log so far, its last max bytes when max > 0.
func (p *Proc) Output(max int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := strings.Join(p.lines, "\n")
	if max > 0 && len(out) > max {
		out = "...\n" + out[len(out)-max:]
	}
	return out
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill SIGKILLs the process and waits for it to be gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitCode waits for the process to exit within timeout and returns its
// exit code (0 for success); false when it is still running.
func (p *Proc) ExitCode(timeout time.Duration) (int, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return 0, false
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), true
	}
	return 0, true
}

// Field returns key's value in a log/slog text line: the bare or quoted
// value after " key=" ("" when the line has no such key).
func Field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if j := strings.Index(v[1:], `"`); j >= 0 {
			return v[1 : j+1]
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// Pid returns the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
