package dfa

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// ErrTooLarge: the pattern's program has more instructions than a DFA is
// built for.
var ErrTooLarge = errors.New("dfa: program too large")

// CompileError is the error of Compile: the pattern and why it has no DFA
// (a *syntax.Error from the parser, or ErrTooLarge).
type CompileError struct {
	Pattern string
	Err     error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("dfa: pattern %q: %v", e.Pattern, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// maxInsts bounds the programs Compile accepts: the closure's work per
// new transition grows with the program.
const maxInsts = 1 << 15

// MaxCells is the default cap on one DFA's cells: a state costs one
// 4-byte cell per rune class, one per thread and 16 more.
const MaxCells = 1 << 16

// processCells counts the cells of every live DFA; processLimit caps it.
var (
	processCells atomic.Int64
	processLimit atomic.Int64
)

func init() { processLimit.Store(1 << 22) } // 32 MiB of cells

// SetProcessCellLimit sets the cap on the cells all DFAs of the process
// hold together and returns the previous one. DFAs that would pass it
// stop growing and answer with Go's regexp.
func SetProcessCellLimit(n int64) int64 { return processLimit.Swap(n) }

// ProcessCells returns the cells all live DFAs hold.
func ProcessCells() int64 { return processCells.Load() }

// DFA is a compiled pattern. Its zero value is not usable; get one from
// Compile or New. It is safe for concurrent use.
type DFA struct {
	pattern  string
	prog     *syntax.Prog
	maxCells int

	once sync.Once
	m    *machine // nil until built

	full atomic.Bool // stopped growing: answer with fb

	fbOnce sync.Once
	fb     *regexp.Regexp
}

// Compile parses pattern as regexp.Compile does and returns its DFA. The
// automaton itself is built lazily, by the matches.
func Compile(pattern string) (*DFA, error) {
	prog, err := compileProg(pattern)
	if err != nil {
		return nil, err
	}
	return &DFA{pattern: pattern, prog: prog, maxCells: MaxCells}, nil
}

// compileProg compiles pattern as regexp.Compile does.
func compileProg(pattern string) (*syntax.Prog, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, &CompileError{pattern, err}
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, &CompileError{pattern, err}
	}
	if len(prog.Inst) > maxInsts {
		return nil, &CompileError{pattern, ErrTooLarge}
	}
	return prog, nil
}

// New returns the DFA of re, parsed and compiled at its first match: a
// set of regexes of which most never run costs nearly nothing more. A
// pattern Compile would refuse answers with re itself, as does a DFA
// that reaches its cap.
func New(re *regexp.Regexp) *DFA {
	return &DFA{pattern: re.String(), maxCells: MaxCells, fb: re}
}

// String returns the pattern.
func (d *DFA) String() string { return d.pattern }

// SetMaxCells changes the DFA's cap on transition cells; it must be
// called before the first match.
func (d *DFA) SetMaxCells(n int) { d.maxCells = n }

// Full reports whether the DFA has stopped growing and answers with Go's
// regexp.
func (d *DFA) Full() bool { return d.full.Load() }

// MatchString reports whether s holds a match of the pattern: the answer
// of regexp.MustCompile(pattern).MatchString(s).
func (d *DFA) MatchString(s string) bool {
	if !d.full.Load() {
		if m := d.machine(); m != nil {
			if hit, ok := m.run(s, false); ok {
				return hit
			}
		}
	}
	return d.fallback().MatchString(s)
}

// MatchLatin1 reports whether the pattern matches s read as Latin-1 (each
// byte the rune of the same value): MatchString of that text's UTF-8
// encoding, without building it.
func (d *DFA) MatchLatin1(s string) bool {
	if !d.full.Load() {
		if m := d.machine(); m != nil {
			if hit, ok := m.run(s, true); ok {
				return hit
			}
		}
	}
	return d.fallback().MatchString(latin1(s))
}

// machine returns the automaton, built at the first call; nil (and the
// DFA full) when New's pattern has no DFA.
func (d *DFA) machine() *machine {
	d.once.Do(func() {
		prog := d.prog
		if prog == nil {
			var err error
			if prog, err = compileProg(d.pattern); err != nil {
				d.full.Store(true) // answer with the regexp New was given
				return
			}
		}
		d.m = newMachine(prog, d.maxCells, &d.full)
		runtime.AddCleanup(d, release, d.m.cells)
	})
	return d.m
}

// release gives a collected DFA's cells back to the process.
func release(cells *atomic.Int64) { processCells.Add(-cells.Swap(0)) }

func (d *DFA) fallback() *regexp.Regexp {
	d.fbOnce.Do(func() {
		if d.fb == nil {
			d.fb = regexp.MustCompile(d.pattern)
		}
	})
	return d.fb
}

// latin1 returns s read as Latin-1, encoded in UTF-8.
func latin1(s string) string {
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = utf8.AppendRune(b, rune(s[i]))
	}
	return string(b)
}
