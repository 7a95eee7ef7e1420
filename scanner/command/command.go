// Package command is a scanner.Engine that runs a program on a temporary
// copy of the bytes: any command-line scanner (clamscan, a vendor's CLI).
//
// The program's exit code decides: Config.Clean and Config.Infected list
// the codes; any other code means the program ran but could not judge the
// file (scanner.ErrContent, escalated, never clean). A program that cannot
// be started, or that runs past Config.Timeout, is unavailable; on timeout
// its whole process group is killed, so a scanner's children die with it.
// Config.Pattern, matched against the output, names what was found; a
// match also marks infected a program that exits with a clean code.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-mail/portcullis/scanner"
)

// Config configures an Engine.
type Config struct {
	// Path is the program.
	Path string
	// Args are its arguments; "{}" is replaced by the file to scan, which
	// is appended when no argument holds "{}".
	Args []string
	// Name is the engine's name. Default: the program's base name.
	Name string
	// Clean and Infected are the exit codes that mean clean and infected.
	// Defaults: 0 and 1 (clamscan's).
	Clean, Infected []int
	// Pattern names the signatures: every match of its first subexpression
	// in stdout and stderr. Default: clamscan's "^.*: (.+) FOUND$".
	Pattern *regexp.Regexp
	// Timeout bounds a run. Default 60 s.
	Timeout time.Duration
	// MaxBytes bounds the copied input; larger input is an ErrSizeLimit
	// error. Default 256 MiB.
	MaxBytes int64
	// MaxOutput bounds the output kept for Pattern. Default 64 KiB.
	MaxOutput int
	// TempDir holds the temporary copies; "" means os.TempDir.
	TempDir string
}

// DefaultPattern is clamscan's report line: "FILE: NAME FOUND".
var DefaultPattern = regexp.MustCompile(`(?m)^.*: (.+) FOUND\r?$`)

// Engine runs a program per scan. It is safe for concurrent use.
type Engine struct {
	cfg Config
}

var _ scanner.Engine = (*Engine)(nil)

// New checks the configuration.
func New(cfg Config) (*Engine, error) {
	if cfg.Path == "" {
		return nil, errors.New("command: no program")
	}
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Path)
	}
	if cfg.Clean == nil {
		cfg.Clean = []int{0}
	}
	if cfg.Infected == nil {
		cfg.Infected = []int{1}
	}
	for _, c := range cfg.Clean {
		if slices.Contains(cfg.Infected, c) {
			return nil, fmt.Errorf("command: exit code %d is both clean and infected", c)
		}
	}
	if cfg.Pattern == nil {
		cfg.Pattern = DefaultPattern
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = 64 << 10
	}
	return &Engine{cfg: cfg}, nil
}

// Name returns the engine's name.
func (e *Engine) Name() string { return e.cfg.Name }

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Scan copies r to a temporary file and runs the program on it.
func (e *Engine) Scan(ctx context.Context, r io.Reader) (scanner.Result, error) {
	f, err := os.CreateTemp(e.cfg.TempDir, "portcullis-scan-")
	if err != nil {
		return scanner.Result{}, fmt.Errorf("command: %w", err)
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, io.LimitReader(r, e.cfg.MaxBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return scanner.Result{}, fmt.Errorf("command: copying input: %w", err)
	}
	if n > e.cfg.MaxBytes {
		return scanner.Result{}, &scanner.ContentError{Reply: fmt.Sprintf("input larger than %d bytes", e.cfg.MaxBytes), SizeLimit: true}
	}

	args := slices.Clone(e.cfg.Args)
	placed := false
	for i, a := range args {
		if strings.Contains(a, "{}") {
			args[i] = strings.ReplaceAll(a, "{}", f.Name())
			placed = true
		}
	}
	if !placed {
		args = append(args, f.Name())
	}
	rctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, e.cfg.Path, args...)
	out := &limitedBuffer{max: e.cfg.MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	// The program may have left children behind even when it exited.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if rctx.Err() != nil {
		if ctx.Err() != nil {
			return scanner.Result{}, ctx.Err()
		}
		return scanner.Result{}, fmt.Errorf("command: %s: %w after %v", e.cfg.Name, context.DeadlineExceeded, e.cfg.Timeout)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() < 0 {
			return scanner.Result{}, fmt.Errorf("command: %s: %w", e.cfg.Name, err)
		}
		code = ee.ExitCode()
	}
	output := out.buf.String()
	var names []string
	for _, m := range e.cfg.Pattern.FindAllStringSubmatch(output, -1) {
		if len(m) > 1 && strings.TrimSpace(m[1]) != "" && !slices.Contains(names, strings.TrimSpace(m[1])) {
			names = append(names, strings.TrimSpace(m[1]))
		}
	}
	switch {
	case slices.Contains(e.cfg.Infected, code):
		if len(names) == 0 {
			names = []string{"(unnamed)"}
		}
		return scanner.Result{Signatures: names}, nil
	case slices.Contains(e.cfg.Clean, code):
		return scanner.Result{Signatures: names}, nil
	}
	return scanner.Result{}, &scanner.ContentError{Reply: fmt.Sprintf("exit code %d: %s", code, firstLine(output))}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
