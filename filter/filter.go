package filter

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Filter examines a message and returns evidence. It must be safe for
// concurrent use: a pipeline calls Check for many messages at once.
//
// Check returns an error when it could not decide (an engine was down, a
// lookup timed out). The pipeline turns the error into a visible
// NAME_FAIL symbol and the filter's failure mode; an error is never clean.
type Filter interface {
	Name() string
	Check(ctx context.Context, m *Message) (Result, error)
}

// Stager is implemented by filters that run at stages other than Data.
type Stager interface {
	Stages() []Stage
}

// Readier is implemented by filters that need loading before they can
// judge mail (rule sets, lists, engine connections). Ready returns nil when
// the filter can run; a pipeline with a filter that is not ready answers
// tempfail, never accept.
type Readier interface {
	Ready() error
}

// Func adapts a function to a Filter that runs at the given stages (Data
// when none are given).
func Func(name string, check func(ctx context.Context, m *Message) (Result, error), stages ...Stage) Filter {
	if len(stages) == 0 {
		stages = []Stage{Data}
	}
	return &funcFilter{name: name, check: check, stages: stages}
}

type funcFilter struct {
	name   string
	check  func(context.Context, *Message) (Result, error)
	stages []Stage
}

func (f *funcFilter) Name() string                                          { return f.name }
func (f *funcFilter) Stages() []Stage                                       { return f.stages }
func (f *funcFilter) Check(ctx context.Context, m *Message) (Result, error) { return f.check(ctx, m) }

// StagesOf returns the stages f runs at: its Stages if it is a Stager,
// otherwise Data.
func StagesOf(f Filter) []Stage {
	if s, ok := f.(Stager); ok {
		return s.Stages()
	}
	return []Stage{Data}
}

// Symbol is one piece of evidence: a name in upper snake case, the score it
// adds and a detail for people, e.g. RBL_ZEN_SBL 4.0 "192.0.2.1 listed: 127.0.0.2".
type Symbol struct {
	Name   string  `json:"name"`
	Score  float64 `json:"score"`
	Detail string  `json:"detail"`
}

func (s Symbol) String() string {
	if s.Detail == "" {
		return fmt.Sprintf("%s(%.2f)", s.Name, s.Score)
	}
	return fmt.Sprintf("%s(%.2f) %q", s.Name, s.Score, s.Detail)
}

// Result is what a filter found: its symbols and, optionally, an action it
// demands whatever the score (an infected attachment demands reject).
type Result struct {
	Symbols []Symbol
	Action  Action // Accept demands nothing
}

// Add appends a symbol to the result.
func (r *Result) Add(name string, score float64, detail string) {
	r.Symbols = append(r.Symbols, Symbol{Name: name, Score: score, Detail: detail})
}

// Demand raises the demanded action to at least a.
func (r *Result) Demand(a Action) { r.Action = r.Action.Max(a) }

// SymbolName turns a filter or list name into the upper snake case used for
// symbols: "clamd-1" becomes "CLAMD_1".
func SymbolName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// sortSymbols orders symbols by name, then detail, then score, so a verdict
// reads the same whatever order the filters finished in.
func sortSymbols(s []Symbol) {
	slices.SortFunc(s, func(a, b Symbol) int {
		if a.Name != b.Name {
			return strings.Compare(a.Name, b.Name)
		}
		if a.Detail != b.Detail {
			return strings.Compare(a.Detail, b.Detail)
		}
		return cmp.Compare(a.Score, b.Score)
	})
}
