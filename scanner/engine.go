package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Engine scans one stream of bytes. Adapters (scanner/clamd, scanner/icap,
// scanner/command) implement it; it must be safe for concurrent use.
//
// Scan returns a Result when the engine judged the bytes: clean (no
// signatures) or infected. Anything else is an error, never clean: an error
// that wraps ErrContent or ErrSizeLimit means the engine is up but could not
// judge these bytes; any other error means the engine is unavailable (it is
// retried on another engine and counts against its circuit breaker).
type Engine interface {
	Name() string
	Scan(ctx context.Context, r io.Reader) (Result, error)
}

// Versioner is implemented by engines that report their signature version
// (clamd's VERSION, ICAP's ISTag). The result cache keys on it, so a new
// signature version invalidates every cached result of that engine.
type Versioner interface {
	Version(ctx context.Context) (string, error)
}

// Result is an engine's judgement of one stream.
type Result struct {
	// Signatures names what was found; empty means clean.
	Signatures []string
}

// Infected reports whether the engine found anything.
func (r Result) Infected() bool { return len(r.Signatures) > 0 }

// Sentinel errors; match them with errors.Is.
var (
	// ErrContent: the engine answered, but could not scan these bytes
	// (a corrupt archive, an engine-side error about the input).
	ErrContent = errors.New("scanner: engine could not scan the content")
	// ErrSizeLimit: the input is larger than the engine scans (clamd's
	// StreamMaxLength); what was scanned is partial. It also matches
	// ErrContent.
	ErrSizeLimit = errors.New("scanner: size limit exceeded, scan partial")
	// ErrProtocol: the engine's reply could not be understood. The engine
	// counts as unavailable.
	ErrProtocol = errors.New("scanner: malformed engine reply")
	// ErrBreakerOpen: the engine's circuit breaker is open; it is not asked.
	ErrBreakerOpen = errors.New("scanner: circuit breaker open")
	// ErrAllDown: no engine (spares included) could give an answer, or too
	// few for the quorum. The message must be tempfailed, never passed.
	ErrAllDown = errors.New("scanner: no engine available")
)

// EngineError is an error of one engine. It unwraps to the cause.
type EngineError struct {
	Engine string
	Err    error
}

func (e *EngineError) Error() string { return e.Engine + ": " + e.Err.Error() }
func (e *EngineError) Unwrap() error { return e.Err }

// ContentError reports an engine's complaint about one input, e.g. clamd's
// "Can't allocate memory ERROR". It matches ErrContent (and ErrSizeLimit
// when SizeLimit is set).
type ContentError struct {
	Reply     string // the engine's words
	SizeLimit bool
}

func (e *ContentError) Error() string {
	if e.SizeLimit {
		return fmt.Sprintf("size limit exceeded: %q", e.Reply)
	}
	return fmt.Sprintf("engine error: %q", e.Reply)
}

// Is makes errors.Is match ErrContent, and ErrSizeLimit for size limits.
func (e *ContentError) Is(target error) bool {
	return target == ErrContent || (e.SizeLimit && target == ErrSizeLimit)
}

// isContent reports whether err is the engine's judgement about the input
// (the engine is up) rather than the engine being unavailable.
func isContent(err error) bool { return errors.Is(err, ErrContent) || errors.Is(err, ErrSizeLimit) }

// EngineFunc adapts a function to an Engine.
func EngineFunc(name string, scan func(ctx context.Context, r io.Reader) (Result, error)) Engine {
	return &funcEngine{name: name, scan: scan}
}

type funcEngine struct {
	name string
	scan func(context.Context, io.Reader) (Result, error)
}

func (f *funcEngine) Name() string { return f.name }
func (f *funcEngine) Scan(ctx context.Context, r io.Reader) (Result, error) {
	return f.scan(ctx, r)
}

// Limiter is implemented by engines that know the largest input they scan
// whole: clamd's StreamMaxLength, MaxFileSize and MaxScanSize, an ICAP
// service's object size limit. Engines do not always say when they stop
// reading (clamd without AlertExceedsMax answers OK for a file beyond
// MaxFileSize it never scanned; ICAP services echo what they pass
// unscanned), so Multi treats every answer for an input larger than
// ScanLimit as partial (ErrSizeLimit), whatever the engine said; a
// detection in the part it read still counts. 0 means no known limit.
type Limiter interface {
	ScanLimit() int64
}

// WithLimit gives an engine that cannot tell its limit (a command-line
// scanner, a vendor's ICAP service whose limit is only in its manual) the
// largest input it scans whole, as Limiter. The wrapper keeps the engine's
// Versioner and io.Closer.
func WithLimit(e Engine, max int64) Engine {
	if _, ok := e.(Versioner); ok {
		return &limitedVersioner{limited{Engine: e, max: max}}
	}
	return &limited{Engine: e, max: max}
}

type limited struct {
	Engine
	max int64
}

func (l *limited) ScanLimit() int64 { return l.max }

func (l *limited) Close() error {
	if c, ok := l.Engine.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

type limitedVersioner struct{ limited }

func (l *limitedVersioner) Version(ctx context.Context) (string, error) {
	return l.Engine.(Versioner).Version(ctx)
}

// scanLimit is an engine's known limit, 0 when it has none.
func scanLimit(e Engine) int64 {
	if l, ok := e.(Limiter); ok {
		return max(l.ScanLimit(), 0)
	}
	return 0
}

// beyondLimit is the error for an answer about more bytes than the engine
// scans whole.
func beyondLimit(engine string, size, limit int64) error {
	return &ContentError{Reply: fmt.Sprintf("%d bytes, more than %s scans whole (%d)", size, engine, limit), SizeLimit: true}
}
