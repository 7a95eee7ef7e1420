package rules

import (
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

//go:embed default
var defaultFS embed.FS

// Config describes where an Engine's rules come from and how it runs.
type Config struct {
	// Name is the filter name (default "rules").
	Name string
	// Files are rule files: ".cf" files are read as SpamAssassin rules (all
	// of them together, in order, so later files override earlier ones),
	// anything else as YAML.
	Files []string
	// Default includes the embedded default rule set (and its corpus,
	// unless SpamAssassin is set too: the corpus' verdicts are the
	// embedded set's alone).
	Default bool
	// SpamAssassin is a directory of SpamAssassin rule files, all its
	// ".cf" files read in name order as SpamAssassin reads them, before
	// the ".cf" files of Files (which may override them). Debian's
	// spamassassin package installs them in /usr/share/spamassassin;
	// SpamAssassinDir finds the copy in use.
	SpamAssassin string
	// Corpus is a regression corpus every new set must pass, in addition
	// to the samples the rule files list.
	Corpus []Sample
	// DetectType names an attachment's type from its first bytes and its
	// name, for attachment rules on field "type" (a gateway passes
	// archive.DetectType). Nil uses h2non/filetype's extension names.
	DetectType func(head []byte, name string) string
	// DemandAction makes Check demand the action the set's thresholds give
	// its score. By default Check only reports symbols and the pipeline's
	// Policy decides.
	DemandAction bool
	// NoPrefilter runs every rule's regex on every message: for
	// benchmarks and for checking the prefilter, never needed otherwise.
	NoPrefilter bool
	Limits      Limits
	noDFA       bool           // Go's regexp only (dfa.go): for the tests that compare
	noGroups    bool           // always rules one by one (group.go): for the tests that compare
	Logger      *slog.Logger   // nil discards
	Metrics     filter.Metrics // nil is a no-op
}

// Engine is a filter.Filter that scores messages with a rule set it can
// replace while messages are in flight. The current set sits behind an
// atomic pointer: a Check reads it once and uses that whole set to the
// end; a reload compiles the new set fully and gates it on the regression
// corpus before swapping it in. A set that fails either is refused, the
// old one keeps serving, and the failure is logged and counted.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics filter.Metrics
	cur     atomic.Pointer[Set]
	stats   statsTable

	reloadMu sync.Mutex             // one reload at a time
	loading  atomic.Int32           // reloads started and not yet done
	stamps   atomic.Pointer[string] // the files' stamps when last read
	ok, bad  atomic.Uint64
	lastErr  atomic.Pointer[error]
}

var (
	_ filter.Filter  = (*Engine)(nil)
	_ filter.Readier = (*Engine)(nil)
)

// New returns an Engine with no set loaded: it is not Ready and its Check
// fails until Reload or Install succeeds.
func New(cfg Config) *Engine {
	if cfg.Name == "" {
		cfg.Name = "rules"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, log: log, metrics: filter.OrNop(cfg.Metrics)}
}

// Load returns an Engine over rule files (".cf" for SpamAssassin, else
// YAML), loaded.
func Load(files ...string) (*Engine, error) {
	e := New(Config{Files: files})
	if err := e.Reload(context.Background()); err != nil {
		return nil, err
	}
	return e, nil
}

// Default returns an Engine with the embedded default rule set loaded. The
// set is part of the library and its tests; it panics only if the library
// itself is broken.
func Default() *Engine {
	e := New(Config{Default: true})
	if err := e.Reload(context.Background()); err != nil {
		panic("rules: the embedded default set does not load: " + err.Error())
	}
	return e
}

// Name implements filter.Filter.
func (e *Engine) Name() string { return e.cfg.Name }

// Ready implements filter.Readier: nil once a set is loaded. Before
// that it is ErrLoading while a load is under way, else ErrNotReady
// joined with the last load's error when one failed.
func (e *Engine) Ready() error {
	if e.cur.Load() != nil {
		return nil
	}
	if e.loading.Load() > 0 {
		return ErrLoading
	}
	if p := e.lastErr.Load(); p != nil {
		return fmt.Errorf("%w: last load failed: %w", ErrNotReady, *p)
	}
	return ErrNotReady
}

// LoadInBackground starts a Reload and returns at once: a server listens
// while its rules load, not ready (ErrLoading) until they are, so that
// it tempfails mail and fails its readiness probe instead of refusing
// connections. The channel receives the load's result and is closed. A
// failed load leaves the Engine not ready (or on its old set); the
// next Reload (SIGHUP, Watch) retries.
func (e *Engine) LoadInBackground(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	e.loading.Add(1) // before returning: Ready says loading at once
	go func() {
		defer close(done)
		// Loading ends before the result is sent: whoever receives it must
		// see Ready answer for the load, not "loading".
		err := func() error {
			defer e.loading.Add(-1)
			return e.reload(ctx)
		}()
		done <- err
	}()
	return done
}

// Current returns the set in use, or nil.
func (e *Engine) Current() *Set { return e.cur.Load() }

// Check implements filter.Filter: one symbol per rule hit.
func (e *Engine) Check(ctx context.Context, m *filter.Message) (filter.Result, error) {
	s := e.cur.Load()
	if s == nil {
		return filter.Result{}, ErrNotReady
	}
	start := time.Now()
	ev, err := s.Evaluate(ctx, m)
	e.metrics.Observe("portcullis_rules_check_seconds", time.Since(start).Seconds())
	if err != nil {
		return filter.Result{}, err
	}
	res := filter.Result{Symbols: ev.Symbols}
	for _, sym := range ev.Symbols {
		e.metrics.Add("portcullis_rules_hits_total", 1, "rule", sym.Name)
	}
	if e.cfg.DemandAction {
		res.Demand(ev.Action)
	}
	return res, nil
}

// Build reads and compiles the set cfg describes, without installing it.
func Build(cfg Config) (*Set, error) { return New(cfg).build() }

func (e *Engine) build() (*Set, error) {
	st := e.fileStamps()
	e.stamps.Store(&st)
	lim := e.cfg.Limits.withDefaults()
	sp := &spec{}
	if e.cfg.Default {
		if err := loadEmbedded(sp, lim); err != nil {
			return nil, err
		}
		if e.cfg.SpamAssassin != "" {
			// The embedded corpus' verdicts are those of the embedded set
			// alone; with SpamAssassin's rules added its spam scores
			// higher, which is the point. And a check both sets make
			// would count twice: SpamAssassin's is kept.
			sp.corpus = nil
			sp.rules = slices.DeleteFunc(sp.rules, func(r Rule) bool { return overlapsSpamAssassin[r.Name] })
		}
	}
	var cf []namedData
	files, err := e.files()
	if err != nil {
		return nil, err
	}
	// Everything the set is compiled from goes into key: the same sources
	// compile to the same set, and the last one compiled is reused.
	h := sha256.New()
	fmt.Fprintf(h, "%t %t %t %t %t %+v\n", e.cfg.Default, e.cfg.SpamAssassin != "", e.cfg.NoPrefilter, e.cfg.noDFA, e.cfg.noGroups, lim)
	read := func(name string) ([]byte, error) {
		data, err := readFile(name, lim)
		if err == nil {
			fmt.Fprintf(h, "%q %d\n", name, len(data))
			h.Write(data)
		}
		return data, err
	}
	for _, f := range files {
		data, err := read(f)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(filepath.Ext(f), ".cf") {
			cf = append(cf, namedData{f, data})
			continue
		}
		dir := filepath.Dir(f)
		err = parseYAML(f, data, sp, func(rel string) ([]byte, error) {
			return read(filepath.Join(dir, filepath.FromSlash(rel)))
		})
		if err != nil {
			return nil, err
		}
	}
	if len(cf) > 0 {
		if err := parseCF(cf, sp); err != nil {
			return nil, err
		}
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	memo := e.cfg.DetectType == nil // a function cannot be part of the key
	if memo {
		if s := lastCompiled.get(key); s != nil {
			return s, nil
		}
	}
	s, err := compile(sp, compileOptions{limits: lim, detect: e.cfg.DetectType, noPrefilter: e.cfg.NoPrefilter, noDFA: e.cfg.noDFA, noGroups: e.cfg.noGroups, stats: &e.stats})
	if err == nil && memo {
		lastCompiled.put(key, s)
	}
	return s, err
}

// lastCompiled is the set compiled last in this process and the key of
// its sources. Compiling SpamAssassin's rules costs seconds of CPU; a
// reload whose files did not change, or a second engine on the same files
// (a milter and a gateway in one process, a test suite), gets the same
// immutable set back at once. Engines sharing a set share its per-rule
// statistics (Engine.Stats). Only the last set is kept, so the memory
// held is at most one set beyond those in use.
var lastCompiled compiledMemo

type compiledMemo struct {
	mu  sync.Mutex
	key [sha256.Size]byte
	set *Set
}

func (m *compiledMemo) get(key [sha256.Size]byte) *Set {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set != nil && m.key == key {
		return m.set
	}
	return nil
}

func (m *compiledMemo) put(key [sha256.Size]byte, s *Set) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.key, m.set = key, s
}

// overlapsSpamAssassin are the embedded rules that make a check
// SpamAssassin's rules make too (GTUBE, missing headers, invalid
// Message-ID, all-caps Subject, the erectile-drug names), and the meta
// rule over them: left out when both sets are loaded.
var overlapsSpamAssassin = map[string]bool{
	"PC_GTUBE": true, "PC_MISSING_DATE": true, "PC_MISSING_FROM": true, "PC_MISSING_MESSAGE_ID": true,
	"PC_MISSING_SUBJECT": true, "PC_MISSING_HEADERS_MULTI": true, "PC_INVALID_MSGID": true,
	"PC_SUBJ_ALL_CAPS": true, "PC_DRUGS_ERECTILE": true,
}

// files lists the rule files to read: the SpamAssassin directory's, then
// Files.
func (e *Engine) files() ([]string, error) {
	if e.cfg.SpamAssassin == "" {
		return e.cfg.Files, nil
	}
	cf, err := filepath.Glob(filepath.Join(e.cfg.SpamAssassin, "*.cf"))
	if err != nil || len(cf) == 0 {
		return nil, &LoadError{File: e.cfg.SpamAssassin, Err: fmt.Errorf("%w: no SpamAssassin .cf files in the directory (Debian: apt-get install spamassassin)", ErrNoFiles)}
	}
	slices.Sort(cf)
	return append(cf, e.cfg.Files...), nil
}

// SpamAssassinDir returns the directory of SpamAssassin rules a Debian
// system uses: the newest sa-update download under /var/lib/spamassassin
// when there is one, else the rules the spamassassin package ships in
// /usr/share/spamassassin; "" when neither exists.
func SpamAssassinDir() string {
	updates, _ := filepath.Glob("/var/lib/spamassassin/*/updates_spamassassin_org")
	slices.Sort(updates)
	for i := len(updates) - 1; i >= 0; i-- {
		if m, _ := filepath.Glob(filepath.Join(updates[i], "*.cf")); len(m) > 0 {
			return updates[i]
		}
	}
	if m, _ := filepath.Glob("/usr/share/spamassassin/*.cf"); len(m) > 0 {
		return "/usr/share/spamassassin"
	}
	return ""
}

// readFile reads a rule file of at most lim.MaxFileBytes. A file that is
// not a regular one (a pipe whose writer has not come, a device) may block
// its open and read for ever, and with them the reload that holds
// Engine's reload lock: no later reload, of fixed files, could run. Such
// a file is read in the background and waited for at most
// lim.MaxReadTime; a later load of the same file (same device and inode)
// waits for that read instead of starting another, so a pipe nobody
// writes costs one blocked reader, not one per retry.
func readFile(name string, lim Limits) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, &LoadError{File: name, Err: err}
	}
	if fi.Mode().IsRegular() {
		return readOpen(name, lim.MaxFileBytes)
	}
	key := fileKey{name: name}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key = fileKey{dev: uint64(st.Dev), ino: st.Ino}
	}
	pendingReads.mu.Lock()
	r, ok := pendingReads.m[key]
	if !ok {
		r = &pendingRead{done: make(chan struct{})}
		if pendingReads.m == nil {
			pendingReads.m = map[fileKey]*pendingRead{}
		}
		pendingReads.m[key] = r
		go func() {
			r.data, r.err = readOpen(name, lim.MaxFileBytes)
			pendingReads.mu.Lock()
			delete(pendingReads.m, key)
			pendingReads.mu.Unlock()
			close(r.done)
		}()
	}
	pendingReads.mu.Unlock()
	t := time.NewTimer(lim.MaxReadTime)
	defer t.Stop()
	select {
	case <-r.done:
		return r.data, r.err
	case <-t.C:
		return nil, &LoadError{File: name, Err: fmt.Errorf("%w: nothing to read after %v (%v, not a regular file)", ErrReadTimeout, lim.MaxReadTime, fi.Mode().Type())}
	}
}

func readOpen(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &LoadError{File: name, Err: err}
	}
	defer f.Close()
	return readLimited(name, f, max)
}

type fileKey struct {
	dev, ino uint64
	name     string // where the system gives no inode
}

type pendingRead struct {
	done chan struct{}
	data []byte
	err  error
}

// pendingReads are the reads of non-regular rule files under way.
var pendingReads struct {
	mu sync.Mutex
	m  map[fileKey]*pendingRead
}

func loadEmbedded(sp *spec, lim Limits) error {
	const name = "default/default.yaml"
	data, err := defaultFS.ReadFile(name)
	if err != nil {
		return &LoadError{File: name, Err: err}
	}
	return parseYAML("(embedded) "+name, data, sp, func(rel string) ([]byte, error) {
		f, err := defaultFS.Open(path.Join("default", rel))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(rel, f, lim.MaxFileBytes)
	})
}

// Reload builds the set from the Config's sources and installs it. On any
// failure the current set stays in use; the error says why, naming file
// and line, or carries the gate's report (errors.Is(err, ErrGate)).
func (e *Engine) Reload(ctx context.Context) error {
	e.loading.Add(1)
	defer e.loading.Add(-1)
	return e.reload(ctx)
}

func (e *Engine) reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	s, err := e.build()
	if err != nil {
		return e.failed(err)
	}
	return e.install(ctx, s)
}

// Install gates s on the regression corpus and makes it the current set.
func (e *Engine) Install(ctx context.Context, s *Set) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.install(ctx, s)
}

func (e *Engine) install(ctx context.Context, s *Set) error {
	corpus := append(slices.Clip(s.Corpus()), e.cfg.Corpus...)
	if len(corpus) > 0 {
		rep, err := Gate(ctx, e.cur.Load(), s, corpus)
		if err != nil {
			return e.failed(err)
		}
		if !rep.OK() {
			return e.failed(&GateError{Report: rep})
		}
	}
	e.cur.Store(s)
	e.ok.Add(1)
	e.metrics.Add("portcullis_rules_reloads_total", 1, "result", "ok")
	e.metrics.Set("portcullis_rules_loaded", float64(s.Len()))
	keyed, always := s.PrefilterStats()
	e.log.Info("rules: set loaded", "rules", s.Len(), "prefiltered", keyed, "always", always,
		"samples", len(corpus), "report", s.Report().String())
	return nil
}

func (e *Engine) failed(err error) error {
	e.bad.Add(1)
	e.lastErr.Store(&err)
	e.metrics.Add("portcullis_rules_reloads_total", 1, "result", "failed")
	e.log.Error("rules: new set refused, keeping the current one", "err", err, "serving", e.cur.Load() != nil)
	return err
}

// Reloads returns how many sets were installed and how many refused, and
// the last refusal.
func (e *Engine) Reloads() (ok, failed uint64, last error) {
	if p := e.lastErr.Load(); p != nil {
		last = *p
	}
	return e.ok.Load(), e.bad.Load(), last
}

// Replace rule files atomically (write aside, then rename) so that Watch
// never reads one half written; an empty file is refused in any case.
//
// Watch reloads whenever a rule file's modification time or size differs
// from when the files were last read, polling every interval (default 2 s) until ctx ends. Polling, rather
// than inotify, needs no extra dependency and sees files replaced by
// rename, on network file systems and in containers with bind mounts,
// where change events are unreliable; a rule file is small and a stat
// every few seconds costs nothing.
func (e *Engine) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p := e.stamps.Load(); p != nil && *p == e.fileStamps() {
			continue
		}
		// A failed reload is logged and counted; the next change retries.
		_ = e.Reload(ctx)
	}
}

func (e *Engine) fileStamps() string {
	var b strings.Builder
	files, err := e.files()
	if err != nil {
		return "error: " + err.Error()
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", f)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", f, st.ModTime().UnixNano(), st.Size())
	}
	return b.String()
}

// ReloadOnSignal reloads each time one of sigs arrives (SIGHUP, by
// convention) until ctx ends.
func (e *Engine) ReloadOnSignal(ctx context.Context, sigs ...os.Signal) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			_ = e.Reload(ctx)
		}
	}
}

// RuleStat is what one rule of the current set has cost and found since
// the Engine started.
type RuleStat struct {
	Name        string
	Evaluations uint64
	Hits        uint64
	Time        time.Duration
}

// Stats returns the statistics of the current set's rules, the most
// expensive first, so that slow rules can be found.
func (e *Engine) Stats() []RuleStat {
	s := e.cur.Load()
	if s == nil {
		return nil
	}
	return s.Stats()
}

// Stats returns the statistics of the set's rules, the most expensive first.
func (s *Set) Stats() []RuleStat {
	out := make([]RuleStat, 0, len(s.rules))
	for _, c := range s.rules {
		out = append(out, RuleStat{Name: c.Name, Evaluations: c.stats.Evaluations.Load(),
			Hits: c.stats.Hits.Load(), Time: time.Duration(c.stats.Nanos.Load())})
	}
	slices.SortStableFunc(out, func(a, b RuleStat) int { return cmp.Compare(b.Time, a.Time) })
	return out
}

// DefaultFS returns the embedded default rule set: default/default.yaml
// and its corpus, for tools that want to show or copy it.
func DefaultFS() fs.FS { return defaultFS }
