package archive

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Inspector walks the attachments of a message and, recursively, the files
// inside their archives. It is safe for concurrent use.
type Inspector struct {
	lim         Limits
	log         *slog.Logger
	metrics     filter.Metrics
	allowNested bool
	bannedExt   map[string]bool
	bannedType  map[string]bool
	riskyExt    map[string]bool
	actions     map[Kind]filter.Action
	scores      map[Kind]float64

	everyLine bool // textBlocks searches every line (tests: skipPlain against it)

	panicMu   sync.Mutex
	panics    int
	lastPanic []byte
}

func (in *Inspector) recordPanic(stack []byte) {
	in.panicMu.Lock()
	in.panics++
	in.lastPanic = stack
	in.panicMu.Unlock()
}

// Panics returns how many decoder panics were recovered so far, and the
// stack of the last one: tests fail on them, gateways count them.
func (in *Inspector) Panics() (int, []byte) {
	in.panicMu.Lock()
	defer in.panicMu.Unlock()
	return in.panics, in.lastPanic
}

var _ filter.Filter = (*Inspector)(nil)

// New returns an Inspector; the zero Config is the default policy.
func New(cfg Config) *Inspector {
	in := &Inspector{
		lim:         cfg.Limits.withDefaults(),
		log:         cfg.Logger,
		metrics:     filter.OrNop(cfg.Metrics),
		allowNested: cfg.AllowNested,
		actions:     DefaultActions(),
		scores:      DefaultScores(),
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	exts, types := cfg.BannedExtensions, cfg.BannedTypes
	if exts == nil {
		exts = DefaultBannedExtensions()
	}
	if types == nil {
		types = DefaultBannedTypes()
	}
	in.bannedExt = lowerSet(exts, cfg.AllowedExtensions)
	in.bannedType = lowerSet(types, cfg.AllowedTypes)
	risky := cfg.ScoredExtensions
	if risky == nil {
		risky = DefaultScoredExtensions()
	}
	in.riskyExt = lowerSet(risky, cfg.AllowedExtensions)
	for k, a := range cfg.Actions {
		in.actions[k] = a
	}
	for k, s := range cfg.Scores {
		in.scores[k] = s
	}
	return in
}

// lowerSet is the set of banned names minus the allowed ones, lower case,
// without leading dots.
func lowerSet(banned, allowed []string) map[string]bool {
	norm := func(s string) string { return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), ".")) }
	m := make(map[string]bool, len(banned))
	for _, s := range banned {
		m[norm(s)] = true
	}
	for _, s := range allowed {
		delete(m, norm(s))
	}
	return m
}

// Name is "archive".
func (in *Inspector) Name() string { return "archive" }

// Action returns the action a finding kind demands under this configuration.
func (in *Inspector) Action(k Kind) filter.Action { return in.actions[k] }

// Check inspects every attachment of m and returns one symbol per finding,
// demanding the most severe action of its findings. It stops at the first
// finding that demands reject: the rest would not change the verdict.
// It returns an error only when it could not decide (the context ended, the
// message could not be read), never for hostile content.
func (in *Inspector) Check(ctx context.Context, m *filter.Message) (filter.Result, error) {
	findings, err := in.Inspect(ctx, m)
	var res filter.Result
	for _, f := range findings {
		res.Add(f.Kind.Symbol(), in.scores[f.Kind], f.Detail())
		res.Demand(in.actions[f.Kind])
	}
	return res, err
}

// Inspect is Check returning the findings themselves.
func (in *Inspector) Inspect(ctx context.Context, m *filter.Message) ([]Finding, error) {
	w := in.newWalker(ctx, nil)
	err := w.message(m)
	in.done(w, err)
	return w.findings, err
}

// Leaf is a file found in a message: an attachment, or a file inside an
// archive at any depth.
type Leaf struct {
	Path  string // where it is, e.g. "invoice.zip/setup.exe" (top level: the attachment's first candidate name, or "part 2" when nameless)
	Name  string // base name inside its container
	Type  string // detected type, e.g. "pe", "elf", "zip", "pdf", "text"
	Size  int64  // decoded size when known, else -1
	Depth int    // 0 = the attachment itself, 1 = inside one archive, ...
}

// Leaves calls fn for every leaf file (not the containers) of every
// attachment part of m, recursively through archives, within the
// inspector's limits. r is valid only during fn. An error from fn stops the
// walk and is returned. Used by the AV scanner so engines scan unpacked
// content.
//
// Besides plain files, fn sees documents whole (a docx, not its XML parts)
// and containers that cannot be opened (encrypted, corrupt, unknown
// formats) as they are, so an engine can still judge them. Nested archives
// are walked whatever Config.AllowNested says.
//
// When a limit stops the walk, Leaves returns a *LimitError (errors.Is
// ErrLimit) after the leaves it could visit: the scan was partial, and a
// scanner must say so. fn may also see a read error from r that is a
// *LimitError when a file is larger than MaxEntryBytes.
func (in *Inspector) Leaves(ctx context.Context, m *filter.Message, fn func(l Leaf, r io.Reader) error) error {
	w := in.newWalker(ctx, fn)
	err := w.message(m)
	in.done(w, err)
	return err
}

func (in *Inspector) newWalker(ctx context.Context, fn func(Leaf, io.Reader) error) *walker {
	return &walker{
		in:       in,
		ctx:      ctx,
		lim:      in.lim,
		fn:       fn,
		start:    time.Now(),
		deadline: time.Now().Add(in.lim.MaxTime),
	}
}

func (in *Inspector) done(w *walker, err error) {
	d := time.Since(w.start)
	mode := "check"
	if w.fn != nil {
		mode = "leaves"
	}
	in.metrics.Observe("portcullis_archive_seconds", d.Seconds(), "mode", mode)
	in.metrics.Add("portcullis_archive_unpacked_bytes_total", float64(w.total), "mode", mode)
	for _, f := range w.findings {
		in.metrics.Add("portcullis_archive_findings_total", 1, "kind", string(f.Kind))
	}
	if err != nil && !errors.Is(err, ErrLimit) {
		in.metrics.Add("portcullis_archive_errors_total", 1, "mode", mode)
	}
	if len(w.findings) > 0 || err != nil {
		names := make([]string, 0, len(w.findings))
		for _, f := range w.findings {
			names = append(names, f.String())
		}
		in.log.Info("archive inspection", "mode", mode, "findings", names, "action", w.demand.String(),
			"unpacked_bytes", w.total, "entries", w.entries, "duration", d, "err", err)
	}
}
