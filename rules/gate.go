package rules

import (
	"context"
	"fmt"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// Sample is one message of a regression corpus and the action the set's
// thresholds must give it.
type Sample struct {
	Name     string // for reports: the file name
	Raw      []byte
	Envelope filter.Envelope
	Expect   filter.Action
	File     string // the rule file that lists it, and where
	Line     int
}

// Change is one sample whose verdict a candidate set changed, with the
// rules that made the difference.
type Change struct {
	Sample  string
	Expect  filter.Action
	Got     filter.Action
	Score   float64
	Was     float64         // score under the current set (0 without one)
	Added   []filter.Symbol // hit with the candidate, not with the current set
	Removed []filter.Symbol // hit with the current set, not with the candidate
	Hits    []filter.Symbol // every hit with the candidate
}

func (c Change) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: expected %s, got %s (score %.2f, was %.2f)", c.Sample, c.Expect, c.Got, c.Score, c.Was)
	if len(c.Added) > 0 {
		fmt.Fprintf(&b, "; now hitting %s", symList(c.Added))
	}
	if len(c.Removed) > 0 {
		fmt.Fprintf(&b, "; no longer hitting %s", symList(c.Removed))
	}
	if len(c.Added) == 0 && len(c.Removed) == 0 {
		fmt.Fprintf(&b, "; hits %s", symList(c.Hits))
	}
	return b.String()
}

func symList(s []filter.Symbol) string {
	if len(s) == 0 {
		return "none"
	}
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s(%.2f)", x.Name, x.Score)
	}
	return strings.Join(parts, " ")
}

// GateReport is the outcome of a regression gate run.
type GateReport struct {
	Checked int
	Changes []Change
}

// OK reports whether no expected verdict changed.
func (r *GateReport) OK() bool { return len(r.Changes) == 0 }

func (r *GateReport) String() string {
	if r.OK() {
		return fmt.Sprintf("%d samples, every verdict as expected", r.Checked)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d samples changed verdict:", len(r.Changes), r.Checked)
	for _, c := range r.Changes {
		b.WriteString("\n  ")
		b.WriteString(c.String())
	}
	return b.String()
}

// GateError is a set refused by the regression gate; errors.Is(err, ErrGate).
type GateError struct{ Report *GateReport }

func (e *GateError) Error() string {
	return "rules: regression gate refused the set: " + e.Report.String()
}

// Is makes errors.Is(err, ErrGate) true.
func (e *GateError) Is(target error) bool { return target == ErrGate }

// Gate runs a candidate set over a corpus and reports every sample whose
// action differs from the expected one, naming the rules that changed
// against the current set (nil when there is none). The report is
// complete; the error is non-nil only when ctx ends.
func Gate(ctx context.Context, current, candidate *Set, corpus []Sample) (*GateReport, error) {
	rep := &GateReport{}
	for _, s := range corpus {
		m := filter.NewMessageBytes(s.Envelope, s.Raw, filter.Limits{})
		ev, err := candidate.Evaluate(ctx, m)
		if err != nil {
			return nil, err
		}
		rep.Checked++
		if ev.Action == s.Expect {
			continue
		}
		c := Change{Sample: s.Name, Expect: s.Expect, Got: ev.Action, Score: ev.Score, Hits: ev.Symbols}
		if current != nil {
			old, err := current.Evaluate(ctx, filter.NewMessageBytes(s.Envelope, s.Raw, filter.Limits{}))
			if err != nil {
				return nil, err
			}
			c.Was = old.Score
			c.Added = symDiff(ev.Symbols, old.Symbols)
			c.Removed = symDiff(old.Symbols, ev.Symbols)
		}
		rep.Changes = append(rep.Changes, c)
	}
	return rep, nil
}

// symDiff returns the symbols of a that b lacks, or has with another score.
func symDiff(a, b []filter.Symbol) []filter.Symbol {
	have := make(map[string]float64, len(b))
	for _, s := range b {
		have[s.Name] = s.Score
	}
	var out []filter.Symbol
	for _, s := range a {
		if sc, ok := have[s.Name]; !ok || sc != s.Score {
			out = append(out, s)
		}
	}
	return out
}
