// Package clamd is a scanner.Engine that asks ClamAV's clamd over TCP or a
// unix socket.
//
// A scan is one zINSTREAM command: the bytes go in chunks, each prefixed
// with its length as a 4-byte big-endian integer, and a zero-length chunk
// ends the stream; clamd answers one NUL-terminated line. Connections are
// reused through clamd sessions (zIDSESSION, replies prefixed "N: "); a
// pooled connection that clamd closed meanwhile is noticed before use, and
// a scan whose reused connection breaks before any reply is retried once on
// a new connection when the input can seek back.
//
// Replies are parsed exactly; anything else is an error, never clean:
//
//	stream: OK                              clean
//	stream: NAME FOUND                      infected with NAME
//	(null) FOUND, stream: FOUND …           infected, name "(unnamed)"
//	INSTREAM size limit exceeded. ERROR     scanner.ErrSizeLimit (partial)
//	stream: Heuristics.Limits.Exceeded.*    scanner.ErrSizeLimit (partial)
//	  FOUND                                   (clamd's AlertExceedsMax)
//	… ERROR                                 scanner.ErrContent (clamd is up)
//	UNKNOWN COMMAND, anything else          scanner.ErrProtocol (unavailable)
//	reset, EOF, timeout                     an I/O error (unavailable)
//
// Run clamd with AlertExceedsMax yes: without it, clamd answers "OK" for a
// file or archive member beyond MaxFileSize or MaxScanSize that it did not
// scan. The client knows the largest input clamd scans whole
// (Config.MaxSize, or the limits of Config.ConfigFile, or ClamAV's
// defaults): an "OK" for more bytes is scanner.ErrSizeLimit, and
// scanner.Multi treats any answer for them as partial (scanner.Limiter).
// An archive member beyond MaxFileSize inside a smaller input is only
// caught by AlertExceedsMax, or by scanning the archive's leaves
// (scanner.ArchiveLeaves), each judged against the limit on its own.
//
// Every read and write has a deadline (Config.Timeout, and the context's
// deadline when earlier); cancelling the context aborts the I/O at once.
package clamd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/internal/netx"
)

// Config configures a Client.
type Config struct {
	// Addr is "unix:/path/to/clamd.ctl", "/path/to/clamd.ctl" or "host:port".
	Addr string
	// Name is the engine's name in symbols and metrics. Default "clamd".
	Name string
	// ChunkSize is the INSTREAM chunk size. Default 64 KiB.
	ChunkSize int
	// Timeout is the deadline of each read and write (clamd answers after
	// the last chunk; large files take longer: the reply deadline is
	// Timeout too). Default 30 s.
	Timeout time.Duration
	// DialTimeout bounds connecting. Default 5 s.
	DialTimeout time.Duration
	// MaxIdle is how many session connections are kept for reuse.
	// Default 4; negative means a new connection per scan.
	MaxIdle int
	// IdleTimeout drops a pooled connection unused this long; keep it
	// below clamd's IdleTimeout (default 30 s). Default 20 s.
	IdleTimeout time.Duration
	// ConfigFile is clamd's clamd.conf, read once by New for the limits
	// that bound what clamd scans whole: StreamMaxLength, MaxFileSize and
	// MaxScanSize (0 in the file: no limit). Keys it does not set take
	// ClamAV's defaults (100M, 100M, 400M). Set it when clamd runs where
	// this process can read its configuration.
	ConfigFile string
	// MaxSize is the largest input clamd scans whole; it overrides what
	// ConfigFile says. 0 means the smallest limit of ConfigFile, or of
	// ClamAV's defaults (100 MiB) without one; negative means no known
	// limit. A scan of more bytes is partial (scanner.ErrSizeLimit)
	// whatever clamd answers: without AlertExceedsMax, clamd says OK for
	// a file beyond MaxFileSize that it did not read.
	MaxSize int64
}

// DefaultMaxSize is ClamAV's default MaxFileSize and StreamMaxLength
// (since 0.105), the limit assumed when neither Config.MaxSize nor
// Config.ConfigFile says otherwise.
const DefaultMaxSize = 100 << 20

// maxReply bounds a reply line; clamd's are short.
const maxReply = 4096

// Client is a clamd engine. It is safe for concurrent use.
type Client struct {
	cfg     Config
	network string
	addr    string

	pool netx.Pool[*conn]
}

var (
	_ scanner.Engine    = (*Client)(nil)
	_ scanner.Versioner = (*Client)(nil)
	_ scanner.Limiter   = (*Client)(nil)
)

// New returns a Client; it does not connect until asked.
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg}
	switch {
	case strings.HasPrefix(cfg.Addr, "unix:"):
		c.network, c.addr = "unix", strings.TrimPrefix(cfg.Addr, "unix:")
	case strings.HasPrefix(cfg.Addr, "/"):
		c.network, c.addr = "unix", cfg.Addr
	case strings.HasPrefix(cfg.Addr, "tcp:"):
		c.network, c.addr = "tcp", strings.TrimPrefix(cfg.Addr, "tcp:")
	default:
		c.network, c.addr = "tcp", cfg.Addr
	}
	if c.network == "tcp" {
		if _, _, err := net.SplitHostPort(c.addr); err != nil {
			return nil, fmt.Errorf("clamd: address %q: %w", cfg.Addr, err)
		}
	}
	if c.addr == "" {
		return nil, fmt.Errorf("clamd: empty address")
	}
	if c.cfg.Name == "" {
		c.cfg.Name = "clamd"
	}
	if c.cfg.ChunkSize <= 0 {
		c.cfg.ChunkSize = 64 << 10
	}
	if c.cfg.Timeout <= 0 {
		c.cfg.Timeout = 30 * time.Second
	}
	if c.cfg.DialTimeout <= 0 {
		c.cfg.DialTimeout = 5 * time.Second
	}
	if c.cfg.MaxIdle == 0 {
		c.cfg.MaxIdle = 4
	}
	if c.cfg.IdleTimeout <= 0 {
		c.cfg.IdleTimeout = 20 * time.Second
	}
	if c.cfg.MaxSize == 0 {
		c.cfg.MaxSize = DefaultMaxSize
		if c.cfg.ConfigFile != "" {
			lim, err := ReadLimits(c.cfg.ConfigFile)
			if err != nil {
				return nil, err
			}
			c.cfg.MaxSize = lim.Max()
		}
	}
	c.pool = netx.Pool[*conn]{Max: max(c.cfg.MaxIdle, 0), IdleTimeout: c.cfg.IdleTimeout}
	return c, nil
}

// ScanLimit is the largest input clamd scans whole (Config.MaxSize); 0
// when none is known. It makes the client a scanner.Limiter.
func (c *Client) ScanLimit() int64 { return max(c.cfg.MaxSize, 0) }

// Name returns the engine's name.
func (c *Client) Name() string { return c.cfg.Name }

// conn is one connection, in a session when pooled.
type conn struct {
	*netx.Conn
	session bool
	id      int // the last request id in the session
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	nc, err := netx.Dial(ctx, c.network, c.addr, c.cfg.DialTimeout, 512, "clamd")
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc}, nil
}

// get returns a live pooled connection or a new one; reused reports which.
func (c *Client) get(ctx context.Context) (cn *conn, reused bool, err error) {
	if cn, ok := c.pool.Get(); ok {
		return cn, true, nil
	}
	cn, err = c.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	if c.cfg.MaxIdle > 0 {
		if err := cn.write(ctx, c.cfg.Timeout, []byte("zIDSESSION\x00")); err != nil {
			cn.NC.Close()
			return nil, false, err
		}
		cn.session = true
	}
	return cn, false, nil
}

// put returns a healthy session connection to the pool, or closes it.
func (c *Client) put(cn *conn) {
	if cn.session && c.pool.Put(cn) {
		return
	}
	end(cn)
}

// end ends a session politely and closes the connection.
func end(cn *conn) {
	if cn.session {
		cn.NC.SetWriteDeadline(time.Now().Add(time.Second))
		cn.NC.Write([]byte("zEND\x00"))
	}
	cn.NC.Close()
}

// Close closes the pooled connections.
func (c *Client) Close() error {
	for _, cn := range c.pool.Drain() {
		end(cn)
	}
	return nil
}

func (cn *conn) write(ctx context.Context, d time.Duration, b []byte) error {
	return cn.Write(ctx, d, b, "clamd")
}

// readReply reads one NUL-terminated reply (newline-terminated from old
// clamd versions), at most maxReply bytes, and strips a session id prefix.
func (cn *conn) readReply(ctx context.Context, d time.Duration) (string, error) {
	cn.NC.SetReadDeadline(netx.Deadline(ctx, d))
	var b []byte
	for {
		ch, err := cn.BR.ReadByte()
		if err != nil {
			if err == io.EOF && len(b) == 0 {
				return "", fmt.Errorf("clamd: connection closed before a reply: %w", io.ErrUnexpectedEOF)
			}
			if err == io.EOF {
				return "", fmt.Errorf("%w: reply not terminated: %q", scanner.ErrProtocol, b)
			}
			return "", fmt.Errorf("clamd: read: %w", err)
		}
		if ch == 0 || ch == '\n' {
			break
		}
		if len(b) >= maxReply {
			return "", fmt.Errorf("%w: reply longer than %d bytes", scanner.ErrProtocol, maxReply)
		}
		b = append(b, ch)
	}
	line := string(b)
	if cn.session {
		id, rest, ok := strings.Cut(line, ": ")
		n, err := strconv.Atoi(id)
		if !ok || err != nil {
			// clamd answers some errors without the id; parse as is.
			return line, nil
		}
		if n != cn.id {
			return "", fmt.Errorf("%w: reply for request %d, expected %d", scanner.ErrProtocol, n, cn.id)
		}
		line = rest
	}
	return line, nil
}

// Scan streams r to clamd with zINSTREAM.
func (c *Client) Scan(ctx context.Context, r io.Reader) (scanner.Result, error) {
	var start int64 = -1
	if s, ok := r.(io.Seeker); ok {
		if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
			start = pos
		}
	}
	cn, reused, err := c.get(ctx)
	if err != nil {
		return scanner.Result{}, err
	}
	res, sent, err := c.instream(ctx, cn, r)
	if err != nil && reused && !sent && start >= 0 && ctx.Err() == nil {
		// The pooled session died under us before clamd answered
		// anything; the input can be replayed on a new connection.
		if _, serr := r.(io.Seeker).Seek(start, io.SeekStart); serr == nil {
			if cn, err = c.dialSession(ctx); err != nil {
				return scanner.Result{}, err
			}
			res, _, err = c.instream(ctx, cn, r)
		}
	}
	return res, err
}

func (c *Client) dialSession(ctx context.Context) (*conn, error) {
	for _, cn := range c.pool.Drain() {
		cn.NC.Close()
	}
	cn, _, err := c.get(ctx)
	return cn, err
}

// instream runs one zINSTREAM on cn and returns cn to the pool when it is
// still good. replied reports whether clamd said anything.
func (c *Client) instream(ctx context.Context, cn *conn, r io.Reader) (res scanner.Result, replied bool, err error) {
	stop := netx.Abort(ctx, cn.NC)
	defer func() {
		if !stop() || err != nil {
			cn.NC.Close()
			err = netx.CtxErr(ctx, "clamd", err)
			return
		}
		c.put(cn)
	}()
	cn.id++
	buf := make([]byte, 4+c.cfg.ChunkSize)
	copy(buf, "zINSTREAM\x00")
	werr := cn.write(ctx, c.cfg.Timeout, buf[:10])
	var total int64
	for werr == nil {
		n, rerr := io.ReadFull(r, buf[4:])
		total += int64(n)
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			werr = cn.write(ctx, c.cfg.Timeout, buf[:4+n])
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return scanner.Result{}, false, fmt.Errorf("clamd: reading input: %w", rerr)
		}
	}
	if werr == nil {
		werr = cn.write(ctx, c.cfg.Timeout, []byte{0, 0, 0, 0})
	}
	// clamd answers early (size limit) and closes; a failed write still
	// leaves its reply to be read.
	line, rerr := cn.readReply(ctx, c.cfg.Timeout)
	if rerr != nil {
		if werr != nil {
			return scanner.Result{}, false, werr
		}
		return scanner.Result{}, false, rerr
	}
	res, err = parseReply(line)
	if err == nil && werr != nil {
		// clamd judged only part of the stream.
		return scanner.Result{}, true, fmt.Errorf("%w: %q before the stream ended: %w", scanner.ErrProtocol, line, werr)
	}
	if err == nil && !res.Infected() && c.cfg.MaxSize > 0 && total > c.cfg.MaxSize {
		// clamd says OK for what it skipped (MaxFileSize without
		// AlertExceedsMax): it cannot vouch for bytes it did not read.
		return res, true, &scanner.ContentError{Reply: fmt.Sprintf("%q for %d bytes, more than clamd scans whole (%d)", line, total, c.cfg.MaxSize), SizeLimit: true}
	}
	return res, true, err
}

// parseReply parses the reply to zINSTREAM (id prefix removed).
func parseReply(line string) (scanner.Result, error) {
	switch {
	case strings.HasSuffix(line, " FOUND") || line == "FOUND":
		name := strings.TrimSuffix(strings.TrimSuffix(line, "FOUND"), " ")
		if i := strings.Index(name, ": "); i >= 0 {
			name = name[i+2:]
		} else if name != "(null)" && name != "" {
			return scanner.Result{}, fmt.Errorf("%w: %q", scanner.ErrProtocol, line)
		}
		name = strings.TrimSpace(name)
		if name == "" || name == "(null)" {
			name = "(unnamed)"
		}
		if strings.HasPrefix(name, "Heuristics.Limits.Exceeded") {
			// AlertExceedsMax: clamd stopped at one of its scan limits
			// (MaxFileSize, MaxScanSize, MaxRecursion …): partial, not a virus.
			return scanner.Result{}, &scanner.ContentError{Reply: line, SizeLimit: true}
		}
		return scanner.Result{Signatures: []string{name}}, nil
	case strings.HasSuffix(line, " OK"):
		if path, _, _ := strings.Cut(line, ": "); path+": OK" == line {
			return scanner.Result{}, nil
		}
		return scanner.Result{}, fmt.Errorf("%w: %q", scanner.ErrProtocol, line)
	case strings.HasSuffix(line, " ERROR"):
		if strings.Contains(line, "size limit exceeded") {
			return scanner.Result{}, &scanner.ContentError{Reply: line, SizeLimit: true}
		}
		if strings.Contains(line, "COMMAND READ TIMED OUT") || strings.Contains(line, "UNKNOWN COMMAND") {
			return scanner.Result{}, fmt.Errorf("%w: %q", scanner.ErrProtocol, line)
		}
		return scanner.Result{}, &scanner.ContentError{Reply: line}
	}
	return scanner.Result{}, fmt.Errorf("%w: %q", scanner.ErrProtocol, line)
}

// command sends a one-shot command on a new connection and returns the
// reply.
func (c *Client) command(ctx context.Context, cmd string) (string, error) {
	cn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer cn.NC.Close()
	stop := netx.Abort(ctx, cn.NC)
	defer stop()
	if err := cn.write(ctx, c.cfg.Timeout, []byte("z"+cmd+"\x00")); err != nil {
		return "", err
	}
	line, err := cn.readReply(ctx, c.cfg.Timeout)
	return line, netx.CtxErr(ctx, "clamd", err)
}

// Ping sends PING and expects PONG.
func (c *Client) Ping(ctx context.Context) error {
	line, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if line != "PONG" {
		return fmt.Errorf("%w: PING answered %q", scanner.ErrProtocol, line)
	}
	return nil
}

// ErrNoSignatureVersion: clamd's VERSION names no database version
// ("ClamAV 1.4.6" with only unofficial signatures loaded), so nothing
// tells when its signatures change and its results are not cached.
var ErrNoSignatureVersion = errors.New("clamd: VERSION names no signature version")

// Version returns clamd's VERSION line, e.g.
// "ClamAV 1.4.6/27463/Mon Nov 23 09:00:00 2026": engine and signature
// version, so a signature update changes it. A line without the database
// part is ErrNoSignatureVersion: with only unofficial databases, clamd
// reports the same version before and after a RELOAD that changed every
// signature, and a result cache keyed on it would replay verdicts of the
// old signatures (a faulty update's detections after its fix).
func (c *Client) Version(ctx context.Context) (string, error) {
	line, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "ClamAV ") {
		return "", fmt.Errorf("%w: VERSION answered %q", scanner.ErrProtocol, line)
	}
	if !strings.Contains(line, "/") {
		return "", fmt.Errorf("%w: %q", ErrNoSignatureVersion, line)
	}
	return line, nil
}
