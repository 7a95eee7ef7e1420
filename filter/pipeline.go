package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Options configure a Pipeline. The zero value is safe: the default
// policy (DefaultPolicy), default limits, DATA spooled in memory up to
// 1 MiB and refused past Limits.MaxMessageBytes, nothing logged or counted.
type Options struct {
	Policy Policy
	// Limits bound the messages a Transaction parses.
	Limits Limits
	// Spool configures how Transaction.Data holds the message; its zero
	// MaxBytes is Limits.MaxMessageBytes.
	Spool   SpoolConfig
	Logger  *slog.Logger // nil discards
	Metrics Metrics      // nil discards
}

// Pipeline runs filters by stage and turns their results into a Verdict.
//
// Filters of one stage run concurrently, each under its own deadline
// (FilterPolicy.Timeout) that holds even when a filter ignores its context.
// A filter that demands Reject cancels the others of its stage. A panic in a
// filter is recovered into a NAME_PANIC symbol and a tempfail, never a crash
// and never a pass. A filter that is not ready (Readier) makes the stage
// answer tempfail. A Pipeline is safe for concurrent use.
type Pipeline struct {
	policy  Policy
	limits  Limits
	spool   SpoolConfig
	log     *slog.Logger
	metrics Metrics
	counts  bool // metrics is not NopMetrics: labels are worth building
	filters []Filter
	byStage [len(stageNames)][]Filter
	panics  atomic.Uint64
}

// NewPipeline builds a pipeline of filters.
func NewPipeline(opts Options, filters ...Filter) *Pipeline {
	p := &Pipeline{policy: opts.Policy, limits: opts.Limits.withDefaults(), spool: opts.Spool,
		log: opts.Logger, metrics: OrNop(opts.Metrics), filters: filters}
	if p.spool.MaxBytes == 0 {
		p.spool.MaxBytes = p.limits.MaxMessageBytes
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	_, nop := p.metrics.(NopMetrics)
	p.counts = !nop
	for _, f := range filters {
		for _, s := range StagesOf(f) {
			if s >= 0 && int(s) < len(p.byStage) {
				p.byStage[s] = append(p.byStage[s], f)
			}
		}
	}
	return p
}

// Filters returns the pipeline's filters in the order given.
func (p *Pipeline) Filters() []Filter { return p.filters }

// Policy returns the pipeline's policy.
func (p *Pipeline) Policy() Policy { return p.policy }

// Panics counts the filter panics recovered so far.
func (p *Pipeline) Panics() uint64 { return p.panics.Load() }

// Ready returns nil when every filter is ready, or the first filter's error.
func (p *Pipeline) Ready() error {
	for _, f := range p.filters {
		if r, ok := f.(Readier); ok {
			if err := r.Ready(); err != nil {
				return fmt.Errorf("filter %s: %w", f.Name(), err)
			}
		}
	}
	return nil
}

// Check runs the filters of one stage over m and decides on their
// evidence alone. A gateway drives a Transaction instead, which weighs the
// evidence of every stage.
func (p *Pipeline) Check(ctx context.Context, stage Stage, m *Message) Verdict {
	start := time.Now()
	st := p.run(ctx, stage, m)
	v := p.policy.Decide(stage, st.symbols, st.demanded)
	p.done(ctx, v, start)
	return v
}

// CheckAll runs every stage in order over a message already in hand, as a
// Transaction would (each stage's filters once), and decides on all the
// evidence together. It stops after a stage whose verdict is tempfail,
// discard or reject. It is the one-shot form for a scan or a re-scan.
func (p *Pipeline) CheckAll(ctx context.Context, m *Message) Verdict {
	start := time.Now()
	var syms, scratch []Symbol
	demanded := Accept
	last := Connect
	for _, s := range Stages() {
		last = s
		st := p.run(ctx, s, m)
		syms = append(syms, st.symbols...)
		demanded = demanded.Max(st.demanded)
		var a Action
		if a, scratch = p.policy.action(syms, demanded, scratch); ends(a) {
			break
		}
	}
	v := p.policy.Decide(last, syms, demanded)
	p.done(ctx, v, start)
	return v
}

// done counts a verdict and writes its one result line.
func (p *Pipeline) done(ctx context.Context, v Verdict, start time.Time, attrs ...any) {
	// Per message: the label and attribute slices are not built for
	// nothing.
	if p.counts {
		p.metrics.Add("portcullis_verdicts_total", 1, "stage", v.Stage.String(), "action", v.Action.String())
	}
	if !p.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	args := make([]any, 0, 14+len(attrs))
	if v.MessageID != "" {
		args = append(args, LogMessageID, v.MessageID)
	}
	args = append(args, "stage", v.Stage, "action", v.Action, "score", v.Score,
		"symbols", len(v.Symbols), "reply", v.Reply.Code, "duration", time.Since(start))
	p.log.InfoContext(ctx, "verdict", append(args, attrs...)...)
}

type stageResult struct {
	symbols  []Symbol
	demanded Action
}

type outcome struct {
	res      Result
	err      error
	panicked any
	timeout  bool
}

func (p *Pipeline) run(ctx context.Context, stage Stage, m *Message) stageResult {
	var st stageResult
	filters := p.byStage[stage]

	// Not ready means tempfail, never accept: a node that has not loaded
	// its rules or lists must not judge mail.
	for _, f := range filters {
		if r, ok := f.(Readier); ok {
			if err := r.Ready(); err != nil {
				st.symbols = append(st.symbols, Symbol{Name: SymbolName(f.Name()) + "_NOT_READY", Detail: err.Error()})
				st.demanded = Tempfail
				p.metrics.Add("portcullis_filter_failures_total", 1, "filter", f.Name(), "reason", "not-ready")
			}
		}
	}
	if st.demanded == Tempfail {
		return st
	}

	if stage == Data && m.HasBody() {
		if err := m.Err(); err != nil {
			var le *LimitError
			if errors.As(err, &le) {
				st.symbols = append(st.symbols, Symbol{Name: le.Symbol(), Detail: le.Error()})
				st.demanded = st.demanded.Max(p.policy.limitAction())
			} else {
				st.symbols = append(st.symbols, Symbol{Name: "MESSAGE_READ_FAIL", Detail: err.Error()})
				st.demanded = Tempfail
			}
		}
	}

	if len(filters) == 0 {
		return st // most stages have none: no contexts to make
	}
	ctx, cancel := context.WithCancel(context.WithValue(ctx, stageKey{}, stage))
	defer cancel()
	outs, rejected := p.runAll(ctx, cancel, stage, filters, m)

	for i, f := range filters {
		o := outs[i]
		name := SymbolName(f.Name())
		fp := p.policy.filterPolicy(f.Name())
		switch {
		case o.panicked != nil:
			st.symbols = append(st.symbols, Symbol{Name: name + "_PANIC", Detail: fmt.Sprint(o.panicked)})
			st.demanded = st.demanded.Max(Tempfail)
		case o.err != nil:
			if rejected && errors.Is(o.err, context.Canceled) {
				continue // cancelled by another filter's hard reject
			}
			detail := o.err.Error()
			if o.timeout {
				detail = "timeout after " + fp.Timeout.String()
			}
			st.symbols = append(st.symbols, Symbol{Name: name + "_FAIL", Score: fp.FailScore, Detail: detail})
			st.demanded = st.demanded.Max(fp.OnError.action())
		default:
			st.symbols = append(st.symbols, o.res.Symbols...)
			st.demanded = st.demanded.Max(o.res.Action)
		}
	}
	return st
}

// filterRun is one filter of a stage in flight.
type filterRun struct {
	f        Filter
	ctx      context.Context // the filter's: the stage's, with its deadline
	deadline time.Time
	done     bool
}

// finished is what a filter's goroutine sends when the filter returns.
type finished struct {
	i int
	o outcome
}

// runAll runs the stage's filters concurrently, each in its own goroutine
// under its own deadline, and waits on this one for their outcomes: a
// filter that ignores its context is given up on at its deadline and
// cannot hold the message past it. rejected reports that one demanded
// Reject, which cancelled the others (cancel is the stage's).
//
// The filters' goroutines are the only ones a stage starts: one more per
// filter only waited on it, with a channel, a closure and an atomic of
// its own.
func (p *Pipeline) runAll(ctx context.Context, cancel context.CancelFunc, stage Stage, filters []Filter, m *Message) (outs []outcome, rejected bool) {
	start := time.Now()
	runs := make([]filterRun, len(filters))
	outs = make([]outcome, len(filters))
	ch := make(chan finished, len(filters)) // a filter given up on never blocks on it
	for i, f := range filters {
		fctx, fcancel := context.WithTimeout(ctx, p.policy.filterPolicy(f.Name()).Timeout)
		defer fcancel()
		d, _ := fctx.Deadline()
		runs[i] = filterRun{f: f, ctx: fctx, deadline: d}
		go p.runFilter(ctx, fctx, stage, f, m, i, ch)
	}
	got := func(r finished) {
		fr := &runs[r.i]
		o := r.o
		if o.err != nil && errors.Is(o.err, context.DeadlineExceeded) && fr.ctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			o.timeout = true
		}
		outs[r.i], fr.done = o, true
		p.record(ctx, stage, fr.f, o, start)
		if o.err == nil && o.panicked == nil && o.res.Action == Reject {
			rejected = true
			cancel()
		}
	}
	for pending := len(runs); pending > 0; {
		// The pending filter whose deadline comes first: its context is
		// done then, or as soon as the stage is cancelled.
		next := -1
		for i := range runs {
			if !runs[i].done && (next < 0 || runs[i].deadline.Before(runs[next].deadline)) {
				next = i
			}
		}
		select {
		case r := <-ch:
			got(r)
			pending--
		case <-runs[next].ctx.Done():
			for drained := false; !drained; {
				select {
				case r := <-ch: // returned in time, though the context is done by now
					got(r)
					pending--
				default:
					drained = true
				}
			}
			for i := range runs {
				if !runs[i].done && runs[i].ctx.Err() != nil {
					got(finished{i, outcome{err: runs[i].ctx.Err()}}) // given up on
					pending--
				}
			}
		}
	}
	return outs, rejected
}

// runFilter is a filter's goroutine: it runs the filter and sends its
// outcome, a panic included, to ch.
func (p *Pipeline) runFilter(ctx, fctx context.Context, stage Stage, f Filter, m *Message, i int, ch chan<- finished) {
	var o outcome
	defer func() {
		if r := recover(); r != nil {
			o = outcome{panicked: r}
			p.panics.Add(1)
			p.log.ErrorContext(ctx, "filter panicked", LogMessageID, MessageIDOf(ctx), "filter", f.Name(), "stage", stage,
				"panic", r, "stack", string(debug.Stack()))
		}
		ch <- finished{i, o}
	}()
	o.res, o.err = f.Check(fctx, m)
}

// record counts and logs one filter's outcome.
func (p *Pipeline) record(ctx context.Context, stage Stage, f Filter, o outcome, start time.Time) {
	result := "ok"
	switch {
	case o.panicked != nil:
		result = "panic"
		p.metrics.Add("portcullis_filter_panics_total", 1, "filter", f.Name())
	case o.timeout:
		result = "timeout"
	case o.err != nil:
		result = "error"
	}
	if result == "timeout" || result == "error" {
		if !errors.Is(o.err, context.Canceled) {
			p.metrics.Add("portcullis_filter_failures_total", 1, "filter", f.Name(), "reason", result)
			p.log.WarnContext(ctx, "filter failed", LogMessageID, MessageIDOf(ctx), "filter", f.Name(), "stage", stage, "result", result, "err", o.err)
		}
	}
	if p.counts {
		p.metrics.Observe("portcullis_filter_seconds", time.Since(start).Seconds(), "filter", f.Name(), "stage", stage.String(), "result", result)
	}
}
