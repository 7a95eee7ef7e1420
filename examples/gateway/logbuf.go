package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logFlushDelay bounds how long an Info or Debug log line waits in the
// buffer before it is written.
const logFlushDelay = 20 * time.Millisecond

// logBuffer gathers log lines into fewer writes: the gateway logs four or
// five lines per message, and one write system call per line was a
// measurable part of its cost per message. A line at Warn or above is
// written at once, with every line before it, in order (flushingHandler),
// so a fault is never held back; the others within logFlushDelay, or when
// 64 KiB are waiting. What a process death loses is at most those last
// milliseconds of Info lines: the messages they speak of are in the queue
// already, and the queue's own lines say so after the restart.
type logBuffer struct {
	mu    sync.Mutex
	out   io.Writer
	buf   []byte
	armed bool // a timed flush is pending
	delay time.Duration
}

func newLogBuffer(out io.Writer, delay time.Duration) *logBuffer {
	return &logBuffer{out: out, delay: delay}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	switch {
	case len(b.buf) >= 64<<10:
		b.flushLocked()
	case !b.armed:
		b.armed = true
		time.AfterFunc(b.delay, b.timed)
	}
	return len(p), nil
}

func (b *logBuffer) timed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	b.flushLocked()
}

// Flush writes whatever is waiting.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *logBuffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	b.out.Write(b.buf) // a log that cannot be written has nowhere to say so
	if cap(b.buf) > 256<<10 {
		b.buf = nil // one burst's buffer is not kept
		return
	}
	b.buf = b.buf[:0]
}

// flushingHandler flushes its logBuffer after every record at Warn or
// above.
type flushingHandler struct {
	slog.Handler
	b *logBuffer
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.b.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(as), h.b}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.b}
}
