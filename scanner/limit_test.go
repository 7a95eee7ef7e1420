package scanner

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// An engine cannot vouch for bytes beyond its limit: over it, a clean
// answer is partial and a detection still counts (and is partial too).
func TestLimitPartialWhateverTheEngineSays(t *testing.T) {
	f := newFake("limited")
	rec := &recMetrics{}
	m := mustMulti(t, Options{Engines: []Engine{WithLimit(f, 10)}, Metrics: rec})
	for _, tc := range []struct {
		in               string
		partial, infects bool
	}{
		{"0123456789", false, false},                  // at the limit: whole
		{"01234567890", true, false},                  // one byte over
		{"VIRUS and then much more", true, true},      // detection kept
		{"01234567890", true, false},                  // cached answer: still partial
		{"VIRUS", false, true},                        // small and infected
		{strings.Repeat("clean ", 1000), true, false}, // far over
	} {
		v, err := scanString(t, m, tc.in)
		if err != nil || v.Partial() != tc.partial || v.Infected != tc.infects || v.Clean() == (tc.partial || tc.infects) {
			t.Errorf("%.20q: %+v %v, want partial %v infected %v", tc.in, v, err, tc.partial, tc.infects)
		}
	}
	if n := rec.get("portcullis_scanner_cache_hits_total", "engine", "limited"); n != 1 {
		t.Errorf("%v cache hits, want 1", n)
	}
	if n := rec.get("portcullis_scanner_scans_total", "engine", "limited", "result", "partial"); n != 2 {
		t.Errorf("%v partial scans counted, want 2", n)
	}
	// The partial answer is not a clean answer toward MinAnswers, yet it is
	// an answer: the engine is up, so this is no outage.
	two := mustMulti(t, Options{Engines: []Engine{WithLimit(newFake("a"), 4), newFake("b")}, MinAnswers: 2})
	v, err := scanString(t, two, "longer than four")
	if err != nil || !v.Partial() || v.Answers != 2 {
		t.Errorf("two engines, one over its limit: %+v %v", v, err)
	}
	// WithLimit keeps Versioner and Closer.
	if _, ok := WithLimit(f, 1).(Versioner); !ok {
		t.Error("WithLimit lost Versioner")
	}
	plain := EngineFunc("plain", func(context.Context, io.Reader) (Result, error) { return Result{}, nil })
	if _, ok := WithLimit(plain, 1).(Versioner); ok {
		t.Error("WithLimit invented a Versioner")
	}
}

// The Filter marks a leaf larger than the engine's limit AV_PARTIAL and
// demands OnError (quarantine), though the engine answered clean.
func TestFilterLeafOverEngineLimit(t *testing.T) {
	m := mustMulti(t, Options{Engines: []Engine{WithLimit(newFake("small"), 100)}})
	walk := LeafFunc(func(ctx context.Context, _ *filter.Message, fn func(Leaf, io.Reader) error) error {
		if err := fn(Leaf{Path: "a.txt"}, strings.NewReader("short")); err != nil {
			return err
		}
		return fn(Leaf{Path: "big.bin"}, strings.NewReader(strings.Repeat("x", 101)))
	})
	f, err := New(Config{Scanner: m, Leaves: walk, Targets: TargetLeaves})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(t.Context(), filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\nbody\r\n"), filter.Limits{}))
	if err != nil || res.Action != filter.Quarantine || len(res.Symbols) != 1 || res.Symbols[0].Name != SymPartial ||
		!strings.Contains(res.Symbols[0].Detail, "big.bin") {
		t.Fatalf("%+v %v, want one AV_PARTIAL for big.bin demanding quarantine", res, err)
	}
	if !errors.Is(&ContentError{SizeLimit: true}, ErrSizeLimit) {
		t.Fatal("ContentError no longer matches ErrSizeLimit")
	}
}
