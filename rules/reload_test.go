package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

const goodRules = `
rules:
  - {name: GOOD, kind: body, literal: alpha, score: 1}
`

func loaded(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e := New(cfg)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func checkHas(t *testing.T, e *Engine, body, want string) {
	t.Helper()
	res, err := e.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\n"+body+"\r\n"), filter.Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Symbols {
		if s.Name == want {
			return
		}
	}
	t.Fatalf("%q: want %s, got %v", body, want, res.Symbols)
}

// TestBadInputRefused: each bad file is refused with an error naming file
// and line, and the old set keeps serving.
func TestBadInputRefused(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("a", 10<<20)
	for _, tc := range []struct {
		name, yaml string
		is         error
		line       int
	}{
		{"invalid regex", "rules:\n  - name: OK\n    kind: body\n    literal: x\n  - name: BAD\n    kind: body\n    regex: 'a(b'\n", ErrInvalid, 5},
		{"10 MB regex", "rules:\n  - name: HUGE\n    kind: body\n    regex: '" + huge + "'\n", ErrLimit, 2},
		{"cyclic meta", "rules:\n  - {name: A, kind: meta, expr: B && C}\n  - {name: B, kind: meta, expr: '!A'}\n  - {name: C, kind: body, literal: c}\n", ErrCycle, 2},
		{"self meta", "rules:\n  - {name: A, kind: meta, expr: A}\n", ErrCycle, 2},
		{"duplicate name", "rules:\n  - {name: A, kind: body, literal: a}\n  - {name: B, kind: body, literal: b}\n  - {name: A, kind: body, literal: c}\n", ErrDuplicate, 4},
		{"unknown meta name", "rules:\n  - {name: A, kind: meta, expr: NOPE}\n", ErrUnknown, 2},
		{"unknown key", "rules:\n  - {name: A, kind: body, literal: a, sore: 1}\n", ErrSyntax, 2},
		{"yaml syntax", "rules:\n  - name: A\n\tkind: body\n", ErrSyntax, 2},
		{"unknown kind", "rules:\n  - {name: A, kind: bodyy, literal: a}\n", ErrInvalid, 2},
		{"bad cidr", "rules:\n  - {name: A, kind: envelope, field: ip, cidr: [300.1.1.1/8]}\n", ErrInvalid, 2},
		{"score for unknown rule", "scores:\n  NOPE: 1\n", ErrUnknown, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "rules.yaml")
			if err := os.WriteFile(file, []byte(goodRules), 0o644); err != nil {
				t.Fatal(err)
			}
			e := loaded(t, Config{Files: []string{file}})
			old := e.Current()
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			err := e.Reload(context.Background())
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			where := fmt.Sprintf("%s:%d", file, tc.line)
			if msg := err.Error(); !strings.Contains(msg, where) {
				t.Fatalf("error %.300q does not name %s", msg, where)
			}
			if e.Current() != old {
				t.Fatal("the refused set replaced the old one")
			}
			checkHas(t, e, "alpha", "GOOD")
			if _, failed, last := e.Reloads(); failed != 1 || last == nil {
				t.Fatalf("failure not counted: %d %v", failed, last)
			}
		})
	}
}

func TestHugeFileRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(file, []byte(goodRules), 0o644); err != nil {
		t.Fatal(err)
	}
	e := loaded(t, Config{Files: []string{file}})
	// 100 MB of rules, written without holding them in memory.
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("  - {name: R0000000, kind: body, literal: some text to find, score: 1}\n")
	f.WriteString("rules:\n")
	w := 0
	for w < 100<<20 {
		n, err := f.Write(line)
		if err != nil {
			t.Fatal(err)
		}
		w += n
	}
	f.Close()
	err = e.Reload(context.Background())
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("100 MB file: %v", err)
	}
	// The default limit is 16 MiB: the line where it is passed is named.
	wantLine := 1 + (16<<20-len("rules:\n"))/len(line) + 1
	if !strings.Contains(err.Error(), fmt.Sprintf("%s:%d", file, wantLine)) {
		t.Fatalf("error %q does not name line %d", err, wantLine)
	}
	checkHas(t, e, "alpha", "GOOD")
}

func TestGateRefusesVerdictChange(t *testing.T) {
	dir := t.TempDir()
	spam := "Subject: offer\r\n\r\nbuy cheap pills today\r\n"
	if err := os.WriteFile(filepath.Join(dir, "spam.eml"), []byte(spam), 0o644); err != nil {
		t.Fatal(err)
	}
	good := `
thresholds: {add-header: 5}
rules:
  - {name: PILLS, kind: body, literal: cheap pills, score: 4}
  - {name: OFFER, kind: header, field: Subject, literal: offer, score: 2}
corpus:
  - {file: spam.eml, expect: add-header}
`
	file := filepath.Join(dir, "rules.yaml")
	os.WriteFile(file, []byte(good), 0o644)
	e := loaded(t, Config{Files: []string{file}})
	old := e.Current()
	// The update "offsets" PILLS: the spam falls under the threshold.
	bad := strings.Replace(good, "score: 4", "score: 1", 1)
	os.WriteFile(file, []byte(bad), 0o644)
	err := e.Reload(context.Background())
	var ge *GateError
	if !errors.Is(err, ErrGate) || !errors.As(err, &ge) {
		t.Fatalf("gate did not refuse: %v", err)
	}
	if len(ge.Report.Changes) != 1 {
		t.Fatalf("report %v", ge.Report)
	}
	c := ge.Report.Changes[0]
	if c.Sample != "spam.eml" || c.Expect != filter.AddHeader || c.Got != filter.Accept || len(c.Added) != 1 || c.Added[0].Name != "PILLS" || c.Added[0].Score != 1 || len(c.Removed) != 1 || c.Removed[0].Score != 4 {
		t.Fatalf("change %+v", c)
	}
	if !strings.Contains(err.Error(), "PILLS") {
		t.Fatalf("error does not name the rule: %v", err)
	}
	if e.Current() != old {
		t.Fatal("refused set installed")
	}
	// Config.Corpus gates too, even when the files list no corpus.
	e2 := New(Config{Files: []string{writeRules(t, "x.yaml", `rules: [{name: X, kind: body, literal: zzz, score: 1}]`)},
		Corpus: []Sample{{Name: "spam", Raw: []byte(spam), Expect: filter.AddHeader}}})
	if err := e2.Reload(context.Background()); !errors.Is(err, ErrGate) || e2.Ready() == nil {
		t.Fatalf("Config.Corpus not gated: %v", err)
	}
}

// TestHotReloadUnderLoad swaps between two sets 1,000 times while
// goroutines scan: every result comes from one whole set.
func TestHotReloadUnderLoad(t *testing.T) {
	mk := func(tag string) *Set {
		var b strings.Builder
		b.WriteString("rules:\n")
		for i := range 20 {
			fmt.Fprintf(&b, "  - {name: %s_%02d, kind: body, regex: '(?i)common', score: 1}\n", tag, i)
		}
		fmt.Fprintf(&b, "  - {name: %s_META, kind: meta, expr: '%s_00 && %s_19', score: 1}\n", tag, tag, tag)
		return mustBuild(t, Config{Files: []string{writeRules(t, tag+".yaml", b.String())}})
	}
	a, b := mk("A"), mk("B")
	e := New(Config{})
	if err := e.Install(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var checks atomic.Int64
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				m := filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\na common message\r\n"), filter.Limits{})
				res, err := e.Check(ctx, m)
				if err != nil {
					errs <- err
					return
				}
				checks.Add(1)
				if len(res.Symbols) != 21 {
					errs <- fmt.Errorf("%d symbols: %v", len(res.Symbols), res.Symbols)
					return
				}
				tag := res.Symbols[0].Name[:1]
				for _, s := range res.Symbols {
					if s.Name[:1] != tag {
						errs <- fmt.Errorf("mixed sets in one result: %v", res.Symbols)
						return
					}
				}
			}
		}()
	}
	for i := range 1000 {
		s := a
		if i%2 == 0 {
			s = b
		}
		if err := e.Install(ctx, s); err != nil {
			t.Fatal(err)
		}
		// Let some checks run on this set before the next swap, so that
		// swaps and checks interleave rather than one running first.
		seen := checks.Load()
		waitFor(t, "checks between swaps", func() bool { return checks.Load() > seen || len(errs) > 0 })
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if ok, _, _ := e.Reloads(); ok != 1001 || checks.Load() < 1000 {
		t.Fatalf("%d installs, %d checks", ok, checks.Load())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	file := writeRules(t, "w.yaml", goodRules)
	e := loaded(t, Config{Files: []string{file}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx, 10*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Replace the file as operators should: write aside, then rename.
	replace := func(content string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	replace(strings.Replace(goodRules, "GOOD", "GOOD_V2", 1))
	waitFor(t, "reload after edit", func() bool { return e.Current().byName["GOOD_V2"] != nil })
	checkHas(t, e, "alpha", "GOOD_V2")
	replace("rules: [oops")
	waitFor(t, "refused reload", func() bool { _, bad, _ := e.Reloads(); return bad >= 1 })
	checkHas(t, e, "alpha", "GOOD_V2")
	// A file caught empty (truncated, half written) is refused too.
	replace("")
	waitFor(t, "refused empty file", func() bool { _, bad, _ := e.Reloads(); return bad >= 2 })
	checkHas(t, e, "alpha", "GOOD_V2")
}

func TestReloadOnSignal(t *testing.T) {
	file := writeRules(t, "s.yaml", goodRules)
	e := loaded(t, Config{Files: []string{file}})
	// Catch SIGUSR1 here too, so that a signal sent before ReloadOnSignal
	// has subscribed cannot kill the test binary.
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGUSR1)
	t.Cleanup(func() { signal.Stop(guard) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.ReloadOnSignal(ctx, syscall.SIGUSR1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	os.WriteFile(file, []byte(strings.Replace(goodRules, "GOOD", "GOOD_SIG", 1)), 0o644)
	waitFor(t, "reload on signal", func() bool {
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		ok, _, _ := e.Reloads()
		return ok >= 2
	})
	checkHas(t, e, "alpha", "GOOD_SIG")
}

// TestPrefilterEquivalence: with and without the prefilter, generated
// rule sets give the same hits on messages made of their own words.
func TestPrefilterEquivalence(t *testing.T) {
	yaml, _ := generatedRules(1000, 7, 60)
	file := writeRules(t, "gen.yaml", yaml)
	with := mustBuild(t, Config{Files: []string{file}})
	without := mustBuild(t, Config{Files: []string{file}, NoPrefilter: true})
	if keyed, _ := with.PrefilterStats(); keyed < 750 {
		t.Fatalf("only %d of 1000 generated rules have prefilter keys", keyed)
	}
	for seed := range 6 {
		raw := generatedMessage(2<<10, uint64(seed))
		a, b := eval(t, with, filter.Envelope{}, raw), eval(t, without, filter.Envelope{}, raw)
		if !slices.Equal(names(a), names(b)) {
			t.Fatalf("seed %d: prefilter %v, none %v", seed, names(a), names(b))
		}
		if seed == 0 && len(a.Symbols) == 0 {
			t.Fatal("generated message hit nothing: the test proves nothing")
		}
	}
}

// LoadInBackground returns at once: the Engine says ErrLoading (and is a
// filter.ErrNotReady) while its file blocks, then ready with the set.
func TestLoadInBackground(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "slow.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	e := New(Config{Files: []string{fifo}})
	done := e.LoadInBackground(context.Background())
	if err := e.Ready(); !errors.Is(err, ErrLoading) || !errors.Is(err, filter.ErrNotReady) {
		t.Fatalf("Ready while loading: %v", err)
	}
	if _, err := e.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\nx\r\n"), filter.Limits{})); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Check while loading: %v", err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("rules:\n  - name: R\n    kind: body\n    literal: \"x\"\n    score: 1\n")
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(); err != nil {
		t.Fatalf("Ready after the load: %v", err)
	}
}

// TestReadTimeout: a first load from a pipe nobody writes fails after
// Limits.MaxReadTime instead of holding the reload lock for ever; retries
// share the one blocked reader; once the file is a regular one a reload
// installs it.
func TestReadTimeout(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "rules.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	e := New(Config{Files: []string{fifo}, Limits: Limits{MaxReadTime: 50 * time.Millisecond}})
	for range 3 {
		err := e.Reload(context.Background())
		if !errors.Is(err, ErrReadTimeout) {
			t.Fatalf("Reload from a silent pipe: %v", err)
		}
	}
	pendingReads.mu.Lock()
	n := len(pendingReads.m)
	pendingReads.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d readers blocked on the pipe, want 1", n)
	}
	// Unblock the reader left behind (it ends with an empty file).
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fifo, []byte("rules:\n  - name: R\n    kind: body\n    literal: \"x\"\n    score: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(context.Background()); err != nil {
		t.Fatalf("Reload of the regular file: %v", err)
	}
	if err := e.Ready(); err != nil {
		t.Fatal(err)
	}
}
