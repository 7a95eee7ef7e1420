package milterd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// QuarantineMode says where a message the verdict quarantines goes.
type QuarantineMode int

const (
	// PostfixHold, the zero value and the default, answers with the milter
	// quarantine action: the MTA keeps the message in its own hold queue
	// (Postfix: `postqueue -j` shows it with "queue_name": "hold",
	// `postsuper -H ID` releases it). It needs nothing but the milter, and
	// the message never leaves the MTA; Portcullis's console, re-scan and
	// bulk release do not see it.
	PostfixHold QuarantineMode = iota
	// Store writes the message durably to the Portcullis quarantine
	// (Config.Hold) and only then answers discard: the MTA drops its copy.
	// The quarantine's list, re-scan and release work on it; a release
	// re-injects it through the configured relay. If the hold fails the
	// MTA is told to try again later (4xx), so the message is never lost.
	Store
)

var quarantineModeNames = [...]string{PostfixHold: "postfix-hold", Store: "store"}

func (m QuarantineMode) String() string {
	if m < 0 || int(m) >= len(quarantineModeNames) {
		return fmt.Sprintf("quarantinemode(%d)", int(m))
	}
	return quarantineModeNames[m]
}

// MarshalText implements encoding.TextMarshaler.
func (m QuarantineMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText accepts "postfix-hold" and "store".
func (m *QuarantineMode) UnmarshalText(b []byte) error {
	for i, n := range quarantineModeNames {
		if strings.EqualFold(string(b), n) {
			*m = QuarantineMode(i)
			return nil
		}
	}
	return fmt.Errorf("milterd: unknown quarantine mode %q (want postfix-hold or store)", b)
}

// Defaults of Config's zero fields.
const (
	// DefaultReadTimeout bounds the wait for the MTA's next packet. Postfix
	// keeps the milter connection open for a whole SMTP session and waits
	// up to smtpd_timeout (300 s) for each client command, so the bound
	// is above that.
	DefaultReadTimeout = 10 * time.Minute
	// DefaultWriteTimeout bounds sending a response to the MTA.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultHoldTimeout bounds Config.Hold, below Postfix's
	// milter_content_timeout (300 s) so the milter answers before Postfix
	// gives up on it.
	DefaultHoldTimeout = 2 * time.Minute
	// DefaultMaxConnections bounds concurrent MTA connections (Postfix
	// opens one per smtpd process; default_process_limit is 100).
	DefaultMaxConnections = 1000
)

// Config configures a Server.
type Config struct {
	// Pipeline runs the filters; one transaction per message. Required.
	Pipeline *filter.Pipeline
	// Quarantine chooses where quarantined messages go; PostfixHold by
	// default.
	Quarantine QuarantineMode
	// Hold stores a message in the Portcullis quarantine and returns only
	// once it is durable (quarantine.Manager.Hold). Required with Store.
	Hold func(ctx context.Context, msg *filter.Message, v filter.Verdict) error
	// HoldTimeout bounds one Hold; 0 means DefaultHoldTimeout. A store
	// that does not answer in time gets the message a 451 4.4.2.
	HoldTimeout time.Duration
	// HeadersOnAccept adds the verdict headers to accepted mail too (as
	// add-header and postfix-hold do); inbound forged copies of them are
	// removed from every message the MTA delivers, whatever this says.
	HeadersOnAccept bool
	// Ready, when set, is asked at every connection and MAIL FROM besides
	// the pipeline's own readiness; not ready answers 451 4.3.2.
	Ready func() error

	MaxPacket      int           // bytes per packet; 0 means DefaultMaxPacket
	ReadTimeout    time.Duration // per packet; 0 means DefaultReadTimeout
	WriteTimeout   time.Duration // per response; 0 means DefaultWriteTimeout
	MaxConnections int           // 0 means DefaultMaxConnections

	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards

	// begin replaces Pipeline.Begin in tests.
	begin func(filter.Envelope) txn
}

// ErrConfig is matched by the errors New returns for a bad Config.
var ErrConfig = errors.New("milterd: bad config")

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("milterd: server closed")

// Server serves the milter protocol: one session per MTA connection, one
// filter transaction per message.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics filter.Metrics
	begin   func(filter.Envelope) txn

	ctx    context.Context // cancelled by Close: filters and holds stop
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	begin := cfg.begin
	if begin == nil {
		if cfg.Pipeline == nil {
			return nil, fmt.Errorf("%w: Pipeline is required", ErrConfig)
		}
		begin = pipelineBegin(cfg.Pipeline)
	}
	if cfg.Quarantine != PostfixHold && cfg.Quarantine != Store {
		return nil, fmt.Errorf("%w: unknown quarantine mode %d", ErrConfig, cfg.Quarantine)
	}
	if cfg.Quarantine == Store && cfg.Hold == nil {
		return nil, fmt.Errorf("%w: quarantine mode store needs Hold", ErrConfig)
	}
	if cfg.MaxPacket <= 0 {
		cfg.MaxPacket = DefaultMaxPacket
	}
	if cfg.MaxPacket < maxBodyChunk+1 {
		return nil, fmt.Errorf("%w: MaxPacket %d is below a body chunk (%d bytes)", ErrConfig, cfg.MaxPacket, maxBodyChunk+1)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, log: log, metrics: filter.OrNop(cfg.Metrics), begin: begin,
		ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{},
	}, nil
}

// Listen opens a listener from a milter socket spec: "tcp:HOST:PORT" or
// Postfix's "inet:HOST:PORT", "unix:/path" (a stale socket file is
// removed first), or a bare "HOST:PORT".
func Listen(spec string) (net.Listener, error) {
	network, addr, ok := strings.Cut(spec, ":")
	switch {
	case ok && (network == "tcp" || network == "inet"):
		return net.Listen("tcp", addr)
	case ok && network == "unix":
		if st, err := os.Lstat(addr); err == nil && st.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
		return net.Listen("unix", addr)
	}
	return net.Listen("tcp", spec)
}

// Serve accepts MTA connections on ln until Shutdown or Close. It always
// returns a non-nil error: ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.WarnContext(s.ctx, "milter accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff) // accept errors (EMFILE) clear by themselves
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(conn) {
			continue
		}
		go s.serveConn(conn)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers a connection, or refuses it when the server is closed or
// full (the MTA then applies milter_default_action).
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return false
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		// Counted and logged before the close: whoever sees the connection
		// closed must also see the refusal in the metrics.
		s.metrics.Add("portcullis_milter_refused_total", 1, "stage", "accept", "reason", "max_connections")
		s.log.WarnContext(s.ctx, "milter connection refused: too many connections", "max", s.cfg.MaxConnections)
		conn.Close()
		return false
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.metrics.Set("portcullis_milter_connections", float64(len(s.conns)))
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.metrics.Set("portcullis_milter_connections", float64(len(s.conns)))
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ServeConn runs one milter session on conn (accepted elsewhere, e.g. a
// socket passed by systemd) and returns when it ends.
func (s *Server) ServeConn(conn net.Conn) {
	if s.track(conn) {
		s.serveConn(conn)
	}
}

func (s *Server) serveConn(conn net.Conn) {
	defer s.untrack(conn)
	ss := newSession(s, conn)
	ss.serve(s.ctx)
}

// Shutdown stops accepting, then waits for the open sessions to end (the
// MTA closes them after its SMTP session) until ctx is done; then it
// closes them as Close does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops accepting, cancels the filters and holds in flight, and
// closes every connection; the MTA applies milter_default_action to the
// messages in flight. It waits for the sessions to return.
func (s *Server) Close() error {
	s.closeListeners()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
}

// ready reports whether the pipeline and Config.Ready are ready.
func (s *Server) ready() error {
	if s.cfg.Pipeline != nil {
		if err := s.cfg.Pipeline.Ready(); err != nil {
			return err
		}
	}
	if s.cfg.Ready != nil {
		return s.cfg.Ready()
	}
	return nil
}

var _ io.Closer = (*Server)(nil)
