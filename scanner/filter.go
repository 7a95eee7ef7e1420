package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Symbols the Filter adds.
const (
	SymInfected    = "AV_INFECTED"       // a confirmed detection
	SymSuspect     = "AV_SUSPECT_ENGINE" // a detection by an engine whose rate jumped
	SymUnconfirmed = "AV_UNCONFIRMED"    // a detection below the quorum
	SymFail        = "AV_FAIL"           // an engine could not scan a part, or no engine answered
	SymPartial     = "AV_PARTIAL"        // a part exceeded an engine's size limit
	SymEngineDown  = "AV_ENGINE_DOWN"    // an engine was unavailable; others answered
)

// EngineSymbol is the per-engine symbol every detection also adds:
// "AV_" + filter.SymbolName(engine) + "_INFECTED" (AV_CLAMD_1_INFECTED for
// "clamd-1"), score 0, demanding nothing. It says which engine reported a
// signature, whether the detection was confirmed (AV_INFECTED), doubted
// (AV_SUSPECT_ENGINE) or below the quorum (AV_UNCONFIRMED), so that a
// quarantine query selects one engine's detections exactly: after a
// faulty update of clamd-1, quarantine.Query{Symbol:
// scanner.EngineSymbol("clamd-1"), Since: T} is every message clamd-1
// flagged since T, and nothing any other engine alone flagged. Multi
// refuses two engines whose names give the same symbol.
func EngineSymbol(engine string) string { return "AV_" + filter.SymbolName(engine) + "_INFECTED" }

// Scanner is what the Filter scans with; *Multi implements it.
type Scanner interface {
	Scan(ctx context.Context, r io.ReaderAt, size int64) (Verdict, error)
}

var _ Scanner = (*Multi)(nil)

// Leaf is one file inside a message, as an archive inspector unpacks it:
// Path names where it is ("invoice.zip/setup.exe").
type Leaf struct {
	Path  string
	Name  string
	Type  string
	Size  int64
	Depth int
}

// LeafWalker hands every leaf file of a message to fn (the archive
// inspector does). A walker error means not every leaf was scanned.
type LeafWalker interface {
	Leaves(ctx context.Context, m *filter.Message, fn func(l Leaf, r io.Reader) error) error
}

// LeafFunc adapts a function to a LeafWalker.
type LeafFunc func(ctx context.Context, m *filter.Message, fn func(l Leaf, r io.Reader) error) error

// Leaves calls f.
func (f LeafFunc) Leaves(ctx context.Context, m *filter.Message, fn func(l Leaf, r io.Reader) error) error {
	return f(ctx, m, fn)
}

// Target says what the Filter scans.
type Target int

const (
	// TargetMessage scans the whole raw message (engines unpack MIME and
	// archives themselves).
	TargetMessage Target = 1 << iota
	// TargetLeaves scans every leaf the LeafWalker hands out, so that a
	// finding names where it is.
	TargetLeaves
)

// Config configures a Filter.
type Config struct {
	// Name is the filter's name in the pipeline. Default "av".
	Name string
	// Scanner does the scanning (a *Multi). Required.
	Scanner Scanner
	// Leaves unpacks the message for TargetLeaves.
	Leaves LeafWalker
	// Targets is what is scanned. Default TargetMessage, plus TargetLeaves
	// when Leaves is set. Both with a Coverer walker (ArchiveLeaves) stream
	// each byte once: see the package documentation.
	Targets Target
	// OnInfected is demanded by a confirmed detection. Default Reject.
	OnInfected filter.Action
	// OnDoubt is demanded by unconfirmed detections (a suspect engine,
	// below the quorum). Default Quarantine.
	OnDoubt filter.Action
	// OnError is demanded when an engine could not scan a part (corrupt
	// input, size limit: partially scanned). Default Quarantine: the
	// stricter path, never a pass.
	OnError filter.Action
	// InfectedScore is the score of each AV_INFECTED symbol.
	InfectedScore float64
	// SpoolBytes: leaves up to this size are held in memory while the
	// engines read them, larger ones in a temp file. Default 4 MiB.
	SpoolBytes int64
	// TempDir is where large leaves are spooled; "" means os.TempDir.
	TempDir string

	Logger  *slog.Logger
	Metrics filter.Metrics
}

// Filter is a filter.Filter that scans messages with antivirus engines.
type Filter struct {
	cfg     Config
	log     *slog.Logger
	metrics filter.Metrics
}

var (
	_ filter.Filter  = (*Filter)(nil)
	_ filter.Readier = (*Filter)(nil)
)

// New returns a Filter.
func New(cfg Config) (*Filter, error) {
	if cfg.Scanner == nil {
		return nil, errors.New("scanner: Config.Scanner is nil")
	}
	if cfg.Name == "" {
		cfg.Name = "av"
	}
	if cfg.Targets == 0 {
		cfg.Targets = TargetMessage
		if cfg.Leaves != nil {
			cfg.Targets |= TargetLeaves
		}
	}
	if cfg.Targets&TargetLeaves != 0 && cfg.Leaves == nil {
		return nil, errors.New("scanner: TargetLeaves without a LeafWalker")
	}
	if cfg.OnInfected == filter.Accept {
		cfg.OnInfected = filter.Reject
	}
	if cfg.OnDoubt == filter.Accept {
		cfg.OnDoubt = filter.Quarantine
	}
	if cfg.OnError == filter.Accept {
		cfg.OnError = filter.Quarantine
	}
	if cfg.SpoolBytes <= 0 {
		cfg.SpoolBytes = 4 << 20
	}
	f := &Filter{cfg: cfg, log: cfg.Logger, metrics: filter.OrNop(cfg.Metrics)}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

// Name returns the configured name.
func (f *Filter) Name() string { return f.cfg.Name }

// Ready reports whether enough engines are in service (when the Scanner
// can tell).
func (f *Filter) Ready() error {
	if r, ok := f.cfg.Scanner.(filter.Readier); ok {
		return r.Ready()
	}
	return nil
}

// Check scans the message and, per Targets, every leaf. An engine outage
// demands Tempfail (symbol AV_FAIL) whatever the pipeline's failure mode,
// so an outage never passes mail; Check returns an error only when ctx
// ends or the message cannot be read.
func (f *Filter) Check(ctx context.Context, m *filter.Message) (res filter.Result, err error) {
	if !m.HasBody() {
		return res, nil
	}
	start := time.Now()
	// Finish before the caller's deadline, so that engines too slow for it
	// end as a Tempfail of this filter's own, whatever failure mode the
	// pipeline would give a timeout.
	sctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		sctx, cancel = context.WithDeadline(ctx, start.Add(time.Until(d)*9/10))
		defer cancel()
	}
	defer func() {
		f.log.Debug("scanner: checked", "action", res.Action, "symbols", len(res.Symbols), "err", err, "seconds", time.Since(start).Seconds())
	}()
	seen := map[filter.Symbol]bool{}
	add := func(name string, score float64, detail string, demand filter.Action) {
		s := filter.Symbol{Name: name, Score: score, Detail: detail}
		if !seen[s] {
			seen[s] = true
			res.Symbols = append(res.Symbols, s)
		}
		res.Demand(demand)
	}
	// down: no engine answered, the mail is tempfailed whatever the rest
	// holds, and each further scan would wait out the timeout.
	down := false
	scanMessage := func(r io.ReaderAt, size int64) error {
		v, err := f.cfg.Scanner.Scan(sctx, r, size)
		down, err = f.apply(ctx, add, v, err, "message")
		return err
	}
	cov, once := f.cfg.Leaves.(Coverer)
	once = once && f.cfg.Targets&(TargetMessage|TargetLeaves) == TargetMessage|TargetLeaves
	if f.cfg.Targets&TargetMessage != 0 && !once {
		if err := scanMessage(m.ReaderAt(), m.Size()); err != nil {
			return filter.Result{}, err
		}
	}
	if f.cfg.Targets&TargetLeaves != 0 && !down {
		complete, err := f.leaves(ctx, sctx, m, add, &down)
		if err != nil {
			return filter.Result{}, err
		}
		if once && !down {
			// Each byte once: the leaves stood for the attachment bodies,
			// so the engines get the rest of the message (headers, inline
			// text, structure). A walk that stopped early covered less:
			// then the whole message, for the engines to unpack.
			r, size := io.ReaderAt(m.ReaderAt()), m.Size()
			if complete {
				sp := splice(r, size, cov.Covered(m))
				r, size = sp, sp.size
			}
			if err := scanMessage(r, size); err != nil {
				return filter.Result{}, err
			}
		}
	}
	return res, nil
}

// leaves scans every leaf; complete reports that the walk visited them
// all and each whole. It returns an error only for what the pipeline must
// handle.
func (f *Filter) leaves(ctx, sctx context.Context, m *filter.Message, add func(string, float64, string, filter.Action), down *bool) (complete bool, _ error) {
	cut := false // a leaf was larger than the unpacker hands out
	err := f.cfg.Leaves.Leaves(sctx, m, func(l Leaf, r io.Reader) error {
		if *down {
			return errStop
		}
		// Every engine reads the leaf, and a spare may read it again:
		// in memory up to SpoolBytes, else a temp file. The unpacker
		// bounds its size (ErrSizeLimit), so the spool needs no limit.
		sp, err := filter.NewSpool(sctx, r, filter.SpoolConfig{Dir: f.cfg.TempDir, MemoryBytes: f.cfg.SpoolBytes, MaxBytes: -1})
		if errors.Is(err, ErrSizeLimit) {
			// Larger than the unpacker hands out: not scanned whole.
			add(SymPartial, 0, fmt.Sprintf("%s: %v", l.Path, err), f.cfg.OnError)
			cut = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("scanner: spooling leaf: %w", err)
		}
		defer sp.Close()
		v, err := f.cfg.Scanner.Scan(sctx, sp, sp.Size())
		*down, err = f.apply(ctx, add, v, err, l.Path)
		return err
	})
	switch {
	case err == nil:
		return !cut, nil
	case errors.Is(err, errStop):
	case ctx.Err() != nil:
		return false, ctx.Err()
	case sctx.Err() != nil:
		add(SymFail, 0, "engines too slow: "+err.Error(), filter.Tempfail)
		*down = true
	case errors.Is(err, ErrSizeLimit):
		add(SymPartial, 0, "leaves: "+err.Error(), f.cfg.OnError)
	default:
		add(SymFail, 0, "leaves: "+err.Error(), f.cfg.OnError)
	}
	return false, nil
}

// errStop ends a leaf walk early.
var errStop = errors.New("scanner: stop")

// apply turns one verdict into symbols; down reports that no engine
// answered. It returns an error only for what the pipeline must handle
// (ctx ended, unreadable input).
func (f *Filter) apply(ctx context.Context, add func(string, float64, string, filter.Action), v Verdict, err error, where string) (down bool, _ error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrAllDown):
		f.metrics.Add("portcullis_scanner_tempfail_total", 1)
		add(SymFail, 0, err.Error(), filter.Tempfail) // ErrAllDown says "no engine available"
		return true, nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// Our own deadline, short of the caller's.
		f.metrics.Add("portcullis_scanner_tempfail_total", 1)
		add(SymFail, 0, "engines too slow: "+err.Error(), filter.Tempfail)
		return true, nil
	default:
		return false, err
	}
	for _, d := range v.Detections {
		what := fmt.Sprintf("%s: %s in %s", d.Engine, d.Signature, where)
		switch {
		case v.Infected:
			add(SymInfected, f.cfg.InfectedScore, what, f.cfg.OnInfected)
		case d.Suspect:
			where := ""
			if d.Fleet {
				where = "fleet "
			}
			add(SymSuspect, 0, fmt.Sprintf("%s (%sdetection rate %.2f, baseline %.2f)", what, where, d.Rate, d.Base), f.cfg.OnDoubt)
		default:
			add(SymUnconfirmed, 0, fmt.Sprintf("%s (below quorum %d)", what, v.Quorum), f.cfg.OnDoubt)
		}
		add(EngineSymbol(d.Engine), 0, what, filter.Accept)
	}
	for _, e := range v.Failures {
		name := SymFail
		if errors.Is(e, ErrSizeLimit) {
			name = SymPartial
		}
		add(name, 0, fmt.Sprintf("%s in %s", e.Error(), where), f.cfg.OnError)
	}
	for _, e := range v.Down {
		add(SymEngineDown, 0, e.Error(), filter.Accept)
	}
	if len(v.Detections) > 0 || len(v.Failures) > 0 {
		f.log.Info("scanner: finding", "where", where, "infected", v.Infected, "unconfirmed", v.Unconfirmed,
			"detections", len(v.Detections), "failures", len(v.Failures))
	}
	return false, nil
}
