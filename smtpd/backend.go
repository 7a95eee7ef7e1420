package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
)

// Router carries out a transaction's verdict after DATA and returns the
// reply; *router.Router implements it. The reply must be a 250 only once
// the message is durable.
type Router interface {
	Route(ctx context.Context, tx *filter.Transaction) filter.Reply
}

// ErrNoPipeline and ErrNoRouter are returned by NewBackend when the
// corresponding Config field is nil.
var (
	ErrNoPipeline = errors.New("smtpd: no pipeline")
	ErrNoRouter   = errors.New("smtpd: no router")
)

// DefaultMaxMessagesPerSession is Config.MaxMessagesPerSession's default.
const DefaultMaxMessagesPerSession = 1000

// Config configures a Backend. Router is required, and Pipeline or
// Acquire.
type Config struct {
	Pipeline *filter.Pipeline
	// Acquire, when set, gives each new session the pipeline it runs on
	// for its whole life, and a release func the session calls once when
	// it ends; Pipeline is then ignored. A server that swaps pipelines on
	// a reload uses it: new sessions get the new one, sessions in flight
	// keep theirs, and the old one's resources can be closed when its
	// last session releases it.
	Acquire func() (*filter.Pipeline, func())
	Router  Router
	// MaxMessagesPerSession bounds the transactions of one connection;
	// MAIL FROM after that many answers 421 4.7.0. 0 means
	// DefaultMaxMessagesPerSession.
	MaxMessagesPerSession int
	// Ready, when set, is asked at every MAIL FROM: an error answers
	// 451 4.3.2 (the queue is not open, the node is draining).
	Ready   func() error
	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards
}

// Backend is a smtp.Backend that filters every transaction. It is safe for
// concurrent use.
type Backend struct {
	cfg     Config
	log     *slog.Logger
	metrics filter.Metrics
	open    atomic.Int64
	// srv is the server NewServer made for it: its size and line limits
	// are what a dotReader enforces (data.go). nil: go-smtp's reader only.
	srv atomic.Pointer[smtp.Server]
}

var _ smtp.Backend = (*Backend)(nil)

// NewBackend returns a Backend.
func NewBackend(cfg Config) (*Backend, error) {
	if cfg.Pipeline == nil && cfg.Acquire == nil {
		return nil, ErrNoPipeline
	}
	if cfg.Router == nil {
		return nil, ErrNoRouter
	}
	if cfg.MaxMessagesPerSession <= 0 {
		cfg.MaxMessagesPerSession = DefaultMaxMessagesPerSession
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{cfg: cfg, log: log, metrics: filter.OrNop(cfg.Metrics)}, nil
}

// Sessions returns how many sessions are open.
func (b *Backend) Sessions() int { return int(b.open.Load()) }

// NewSession runs the connect and HELO stages; go-smtp calls it at the
// client's first EHLO or HELO.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{b: b, c: c, ctx: ctx, cancel: cancel, start: time.Now()}
	s.log = b.log.With("client", s.clientAddr())
	s.pipe, s.release = b.cfg.Pipeline, func() {}
	if b.cfg.Acquire != nil {
		p, release := b.cfg.Acquire()
		var once sync.Once
		s.pipe, s.release = p, func() { once.Do(release) }
	}
	if err := s.begin(); err != nil {
		s.tx.Close()
		s.release()
		cancel()
		return nil, err
	}
	b.open.Add(1)
	b.metrics.Add("portcullis_smtpd_sessions_total", 1)
	b.metrics.Set("portcullis_smtpd_sessions", float64(b.open.Load()))
	return s, nil
}

// session is one connection's state. go-smtp calls its methods from the
// connection's goroutine, except Logout, which Server.Close calls from
// another: mu keeps Logout from closing the transaction under a running
// command (it cancels ctx first, so the command ends promptly).
type session struct {
	mu      sync.Mutex
	b       *Backend
	c       *smtp.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	log     *slog.Logger
	start   time.Time
	pipe    *filter.Pipeline
	release func() // gives pipe back (Config.Acquire); called once, at the end
	tx      *filter.Transaction
	tls     bool
	helo    string
	msgs    int // transactions that reached DATA
}

func (s *session) clientAddr() string {
	if a := s.c.Conn().RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

func clientIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// begin starts a transaction with what is known of the connection and
// runs the connect and HELO stages.
func (s *session) begin() error {
	_, s.tls = s.c.TLSConnectionState()
	s.tx = s.pipe.Begin(filter.Envelope{ClientIP: clientIP(s.c.Conn()), Helo: s.c.Hostname(), TLS: s.tls})
	if v := s.tx.Connect(s.ctx); refuses(v) {
		return s.refuse(filter.Connect, v)
	}
	s.helo = s.c.Hostname()
	if v := s.tx.Helo(s.ctx, s.helo); refuses(v) {
		return s.refuse(filter.Helo, v)
	}
	return nil
}

// refuses reports whether a verdict before DATA ends the command: the
// later stages decide everything else.
func refuses(v filter.Verdict) bool { return v.Action == filter.Reject || v.Action == filter.Tempfail }

func (s *session) refuse(stage filter.Stage, v filter.Verdict) error {
	e := SMTPError(v.Reply)
	if e.Code < 400 {
		e = SMTPError(filter.ReplyFor(v.Action, stage))
	}
	s.count(stage, e.Code)
	s.log.InfoContext(s.ctx, "refused", filter.LogMessageID, s.tx.ID(), "stage", stage, "action", v.Action, "score", v.Score, "reply", e.Code)
	return e
}

func (s *session) count(stage filter.Stage, code int) {
	s.b.metrics.Add("portcullis_smtpd_replies_total", 1, "stage", stage.String(), "class", string(rune('0'+code/100))+"xx")
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgs >= s.b.cfg.MaxMessagesPerSession {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages in one session"}
	}
	if s.b.cfg.Ready != nil {
		if err := s.b.cfg.Ready(); err != nil {
			s.log.WarnContext(s.ctx, "not ready", "err", err)
			s.count(filter.MailFrom, 451)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Not ready, please try again later"}
		}
	}
	if _, isTLS := s.c.TLSConnectionState(); isTLS != s.tls {
		// STARTTLS: forget the transaction of the plain connection.
		s.tx.Close()
		if err := s.begin(); err != nil {
			return err
		}
	} else if h := s.c.Hostname(); h != s.helo {
		// A second EHLO: go-smtp only resets the session; the new name
		// replaces the old one and its evidence.
		s.helo = h
		if v := s.tx.Helo(s.ctx, h); refuses(v) {
			return s.refuse(filter.Helo, v)
		}
	}
	if v := s.tx.Mail(s.ctx, from); refuses(v) {
		return s.refuse(filter.MailFrom, v)
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.tx.Rcpt(s.ctx, to); refuses(v) {
		return s.refuse(filter.Rcpt, v)
	}
	return nil
}

func (s *session) Data(r io.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs++
	r, bulk := s.bulkData(r)
	if bulk != nil {
		defer bulk.finish()
	}
	s.b.metrics.Add("portcullis_smtpd_data_total", 1, "reader", readerName(bulk))
	_, err := s.tx.Data(s.ctx, r)
	if err != nil {
		se := dataError(err)
		s.count(filter.Data, se.Code)
		s.log.WarnContext(s.ctx, "data failed", filter.LogMessageID, s.tx.ID(), "reply", se.Code, "err", err)
		return se
	}
	e := SMTPError(s.b.cfg.Router.Route(s.ctx, s.tx))
	s.count(filter.Data, e.Code)
	return e
}

func readerName(d *dotReader) string {
	if d != nil {
		return "bulk"
	}
	return "go-smtp"
}

// errLineTooLong is the reply to a DATA line over go-smtp's
// MaxLineLength: a permanent content problem, sending again cannot help.
var errLineTooLong = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message line too long"}

// dataError maps an error of reading DATA to its reply: go-smtp's size
// limit is already one, its line limit gets errLineTooLong, and the rest
// (a spool error, a client gone) is filter.ErrorReply's.
func dataError(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong
	}
	return SMTPError(filter.ErrorReply(err))
}

func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tx.Reset()
}

func (s *session) Logout() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tx.Close()
	s.release()
	s.b.open.Add(-1)
	s.b.metrics.Set("portcullis_smtpd_sessions", float64(s.b.open.Load()))
	s.log.DebugContext(s.ctx, "session end", "messages", s.msgs, "duration", time.Since(s.start))
	return nil
}

// ServerConfig holds the go-smtp server settings NewServer applies.
type ServerConfig struct {
	// Domain is the name in the greeting; "" means "localhost".
	Domain string
	// MaxMessageBytes is advertised with SIZE and enforced while reading
	// DATA (552 5.3.4); 0 means filter.DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT TO per transaction; 0 means 100.
	MaxRecipients int
	// ReadTimeout and WriteTimeout bound every command's read and every
	// reply's write; 0 means 5 minutes and 1 minute (RFC 5321 §4.5.3.2).
	ReadTimeout, WriteTimeout time.Duration
	// TLS enables STARTTLS.
	TLS *tls.Config
	// ErrorLog receives go-smtp's own errors; nil discards them.
	ErrorLog smtp.Logger
}

// NewServer returns a go-smtp server for the backend with SIZE, 8BITMIME,
// SMTPUTF8, PIPELINING and CHUNKING, STARTTLS when cfg.TLS is set, and the
// limits and deadlines of cfg.
func NewServer(b *Backend, cfg ServerConfig) *smtp.Server {
	srv := smtp.NewServer(b)
	srv.Domain = cfg.Domain
	if srv.Domain == "" {
		srv.Domain = "localhost"
	}
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	if srv.MaxMessageBytes <= 0 {
		srv.MaxMessageBytes = filter.DefaultMaxMessageBytes
	}
	srv.MaxRecipients = cfg.MaxRecipients
	if srv.MaxRecipients <= 0 {
		srv.MaxRecipients = 100
	}
	srv.ReadTimeout, srv.WriteTimeout = cfg.ReadTimeout, cfg.WriteTimeout
	if srv.ReadTimeout <= 0 {
		srv.ReadTimeout = 5 * time.Minute
	}
	if srv.WriteTimeout <= 0 {
		srv.WriteTimeout = time.Minute
	}
	srv.EnableSMTPUTF8 = true
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = cfg.ErrorLog
	if srv.ErrorLog == nil {
		srv.ErrorLog = discardLogger{}
	}
	b.srv.Store(srv)
	return srv
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
