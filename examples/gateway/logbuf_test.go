package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// chanWriter records each write and signals it.
type chanWriter struct {
	mu     sync.Mutex
	writes []string
	wrote  chan struct{}
}

func (w *chanWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, string(p))
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return len(p), nil
}

func (w *chanWriter) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

// TestLogBufferWarnFlushesInOrder: Info lines wait; a Warn line writes
// them and itself in one write, in order.
func TestLogBufferWarnFlushesInOrder(t *testing.T) {
	w := &chanWriter{wrote: make(chan struct{}, 8)}
	lb := newLogBuffer(w, time.Hour)
	log := slog.New(flushingHandler{slog.NewTextHandler(lb, nil), lb}).With("gw", "test")
	log.Info("first")
	log.Info("second")
	if got := w.all(); len(got) != 0 {
		t.Fatalf("Info lines written before a flush: %q", got)
	}
	log.Warn("fault")
	got := w.all()
	if len(got) != 1 || strings.Count(got[0], "\n") != 3 {
		t.Fatalf("writes after a Warn: %q, want the three lines in one", got)
	}
	i, j, k := strings.Index(got[0], "msg=first"), strings.Index(got[0], "msg=second"), strings.Index(got[0], "msg=fault")
	if i < 0 || !(i < j && j < k) || !strings.Contains(got[0], "gw=test") {
		t.Errorf("order or attributes lost: %q", got[0])
	}
}

// TestLogBufferTimedFlush: an Info line alone is written within the
// delay, without any other call.
func TestLogBufferTimedFlush(t *testing.T) {
	w := &chanWriter{wrote: make(chan struct{}, 8)}
	lb := newLogBuffer(w, time.Millisecond)
	log := slog.New(flushingHandler{slog.NewTextHandler(lb, nil), lb})
	log.InfoContext(context.Background(), "alone")
	select {
	case <-w.wrote:
	case <-time.After(30 * time.Second):
		t.Fatal("an Info line was never written")
	}
	if got := w.all(); len(got) != 1 || !strings.Contains(got[0], "msg=alone") {
		t.Errorf("writes %q", got)
	}
}

// TestLogBufferLimit: past 64 KiB the buffer is written without waiting.
func TestLogBufferLimit(t *testing.T) {
	var out bytes.Buffer
	lb := newLogBuffer(&out, time.Hour)
	line := strings.Repeat("x", 1000) + "\n"
	for range 70 {
		lb.Write([]byte(line))
	}
	lb.mu.Lock()
	n := out.Len()
	lb.mu.Unlock()
	if n < 64<<10 {
		t.Errorf("%d bytes written after 70 KB of lines, want the first 64 KiB", n)
	}
}
