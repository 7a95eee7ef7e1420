// Package icap is a scanner.Engine that asks an ICAP server (RFC 3507), the
// way commercial antivirus engines (Sophos, Kaspersky, McAfee/Trellix,
// Symantec, ESET, Trend Micro) and c-icap's virus_scan plug into gateways.
//
// The client learns the service from OPTIONS (Preview, ISTag, Allow: 204,
// Max-Connections, Options-TTL) and scans with RESPMOD: the bytes travel as
// the chunked body of a made-up HTTP response, the first Preview bytes
// first ("0; ieof" when they are all there is); the server answers
// "100 Continue" for the rest, or decides at once.
//
// The answer is read strictly, and anything unclear is an error, never
// clean:
//
//	204 No Content                      clean (unmodified)
//	200 with X-Infection-Found,         infected; the threat names are taken
//	  X-Virus-ID, X-Virus-Name or         from those headers (in the ICAP
//	  X-Violations-Found                  response or the HTTP header)
//	200 with any other verdict header   blocked: infected, "(blocked: NAME
//	  (X-Blocked-Reason, X-Blocked,       VALUE)"; X-Response-Info: Allowed
//	  X-Response-Info: Blocked, any       and X-Virus-Scanned are not
//	  X-Virus-/X-Threat-/X-Malware-/      verdicts
//	  X-Infection-/X-Block-… header)
//	200, HTTP status not 2xx, a null    blocked: infected, "(blocked: HTTP
//	  body, or a body other than the      403)", "(blocked: no body)",
//	  one sent                            "(blocked: body replaced)"
//	200 without Encapsulated            scanner.ErrProtocol
//	200, identical body                 clean (a server that never sends 204)
//	clean answer to the preview, the    scanner.ErrSizeLimit: the rest was
//	  rest never sent                     never read (Config.TrustPreview)
//	413                                 scanner.ErrSizeLimit
//	clean, more than Config.MaxSize     scanner.ErrSizeLimit (servers pass
//	                                      what they do not scan)
//	400, 404, 405, 501, other           scanner.ErrProtocol (unavailable)
//	500, 503                            unavailable (retried elsewhere)
//
// ISTag is the signature version for the result cache (scanner.Versioner).
// Connections are kept alive and reused unless the server says
// "Connection: close"; Max-Connections bounds the scans in flight. Every
// read and write has a deadline, and the context aborts the I/O.
package icap

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/internal/netx"
)

// Config configures a Client.
type Config struct {
	// URL is icap://host[:port]/service (port 1344 by default).
	URL string
	// Name is the engine's name in symbols and metrics. Default "icap".
	Name string
	// Timeout is the deadline of each read and write. Default 30 s.
	Timeout time.Duration
	// DialTimeout bounds connecting. Default 5 s.
	DialTimeout time.Duration
	// MaxIdle is how many kept-alive connections are pooled. Default 4;
	// negative means a new connection per scan.
	MaxIdle int
	// IdleTimeout drops a pooled connection unused this long. Default 30 s.
	IdleTimeout time.Duration
	// Preview overrides the server's Preview size; negative disables
	// preview. 0 means the server's.
	Preview int
	// MaxSize is the largest object the service scans whole (c-icap's
	// virus_scan.MaxObjectSize; vendors have their own). ICAP servers pass
	// larger objects unscanned with a clean-looking answer, so a clean
	// answer for more than MaxSize bytes is scanner.ErrSizeLimit (partial).
	// 0 means the service has no limit. Set it whenever the service has one.
	MaxSize int64
	// MaxConnections bounds scans in flight when the server names no
	// Max-Connections. Default 32.
	MaxConnections int
	// TrustPreview takes a clean answer to the preview (204, or 200 with
	// the preview echoed) as clean. By default it is a partial scan
	// (scanner.ErrSizeLimit): the server judged the first Preview bytes,
	// e.g. by file type (c-icap's ScanFileTypes), and never read the rest.
	TrustPreview bool
}

// Limits on what the server may send.
const (
	maxLine    = 8 << 10
	maxHeaders = 64 << 10
	maxFields  = 200
	// maxExtraBody is how much longer than the scanned bytes a returned
	// body may be before the comparison stops (it differs anyway).
	maxExtraBody = 1 << 20
)

// Options is what OPTIONS told about the service.
type Options struct {
	Methods        []string
	ISTag          string
	Preview        int // -1 when the server names none
	Allow204       bool
	MaxConnections int
	TTL            time.Duration
	fetched        time.Time
}

// Client is an ICAP engine. It is safe for concurrent use.
type Client struct {
	cfg  Config
	host string // host:port
	uri  string // icap://host:port/service

	mu   sync.Mutex
	opts *Options
	sem  chan struct{}
	pool netx.Pool[*netx.Conn]
}

var (
	_ scanner.Engine    = (*Client)(nil)
	_ scanner.Versioner = (*Client)(nil)
	_ scanner.Limiter   = (*Client)(nil)
)

// New returns a Client; it does not connect until asked.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("icap: %w", err)
	}
	if u.Scheme != "icap" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("icap: URL %q is not icap://host[:port]/service", cfg.URL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1344")
	}
	c := &Client{cfg: cfg, host: host}
	c.uri = "icap://" + host + u.EscapedPath()
	if u.RawQuery != "" {
		c.uri += "?" + u.RawQuery
	}
	if c.cfg.Name == "" {
		c.cfg.Name = "icap"
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
		c.cfg.IdleTimeout = 30 * time.Second
	}
	if c.cfg.MaxConnections <= 0 {
		c.cfg.MaxConnections = 32
	}
	c.pool = netx.Pool[*netx.Conn]{Max: max(c.cfg.MaxIdle, 0), IdleTimeout: c.cfg.IdleTimeout}
	return c, nil
}

// Name returns the engine's name.
func (c *Client) Name() string { return c.cfg.Name }

// ScanLimit is Config.MaxSize, the largest object the service scans whole
// (0: none known). It makes the client a scanner.Limiter.
func (c *Client) ScanLimit() int64 { return max(c.cfg.MaxSize, 0) }

type conn = netx.Conn

func (c *Client) dial(ctx context.Context) (*conn, error) {
	return netx.Dial(ctx, "tcp", c.host, c.cfg.DialTimeout, 4096, "icap")
}

func (c *Client) get(ctx context.Context) (cn *conn, reused bool, err error) {
	if cn, ok := c.pool.Get(); ok {
		return cn, true, nil
	}
	cn, err = c.dial(ctx)
	return cn, false, err
}

func (c *Client) put(cn *conn) {
	if !c.pool.Put(cn) {
		cn.NC.Close()
	}
}

// Close closes the pooled connections.
func (c *Client) Close() error {
	for _, cn := range c.pool.Drain() {
		cn.NC.Close()
	}
	return nil
}

// exchange runs one request on a connection: write sends the request and
// may read interim answers; the final response is returned. The
// connection goes back to the pool when the exchange completed cleanly and
// the server keeps it alive.
func (c *Client) exchange(ctx context.Context, cn *conn, fn func(cn *conn) (*response, error)) (resp *response, err error) {
	stop := netx.Abort(ctx, cn.NC)
	defer func() {
		if !stop() || err != nil || resp.close || c.cfg.MaxIdle < 0 {
			cn.NC.Close()
			err = netx.CtxErr(ctx, "icap", err)
			return
		}
		c.put(cn)
	}()
	return fn(cn)
}

// Options asks the server for the service's options (fresh, not cached).
func (c *Client) Options(ctx context.Context) (*Options, error) {
	cn, _, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.exchange(ctx, cn, func(cn *conn) (*response, error) {
		req := "OPTIONS " + c.uri + " ICAP/1.0\r\nHost: " + c.host + "\r\nEncapsulated: null-body=0\r\n\r\n"
		if err := cn.Write(ctx, c.cfg.Timeout, []byte(req), "icap"); err != nil {
			return nil, err
		}
		cn.NC.SetReadDeadline(netx.Deadline(ctx, c.cfg.Timeout))
		resp, err := readResponse(cn.BR)
		if err != nil {
			return nil, err
		}
		return resp, resp.discardBody(cn.BR)
	})
	if err != nil {
		return nil, err
	}
	if resp.status != 200 {
		return nil, fmt.Errorf("%w: OPTIONS answered %d %s", scanner.ErrProtocol, resp.status, resp.reason)
	}
	o := parseOptions(resp)
	o.fetched = time.Now()
	c.mu.Lock()
	c.opts = o
	if c.sem == nil {
		n := c.cfg.MaxConnections
		if o.MaxConnections > 0 {
			n = min(n, o.MaxConnections)
		}
		c.sem = make(chan struct{}, n)
	}
	c.mu.Unlock()
	return o, nil
}

func parseOptions(resp *response) *Options {
	o := &Options{ISTag: strings.Trim(resp.get("ISTag"), `"`), Preview: -1, TTL: time.Hour}
	for m := range strings.SplitSeq(resp.get("Methods"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.Methods = append(o.Methods, m)
		}
	}
	if n, err := strconv.Atoi(resp.get("Preview")); err == nil && n >= 0 {
		o.Preview = n
	}
	for a := range strings.SplitSeq(resp.get("Allow"), ",") {
		if strings.TrimSpace(a) == "204" {
			o.Allow204 = true
		}
	}
	if n, err := strconv.Atoi(resp.get("Max-Connections")); err == nil && n > 0 {
		o.MaxConnections = n
	}
	if n, err := strconv.Atoi(resp.get("Options-TTL")); err == nil && n > 0 {
		o.TTL = time.Duration(n) * time.Second
	}
	return o
}

// options returns the cached options, fetching them when stale.
func (c *Client) options(ctx context.Context) (*Options, error) {
	c.mu.Lock()
	o := c.opts
	c.mu.Unlock()
	if o != nil && time.Since(o.fetched) < o.TTL {
		return o, nil
	}
	return c.Options(ctx)
}

// Version returns the service's ISTag, which changes with its signatures.
func (c *Client) Version(ctx context.Context) (string, error) {
	o, err := c.Options(ctx)
	if err != nil {
		return "", err
	}
	if o.ISTag == "" {
		return "", fmt.Errorf("%w: OPTIONS without ISTag", scanner.ErrProtocol)
	}
	return o.ISTag, nil
}

// Scan sends r with RESPMOD and interprets the answer.
func (c *Client) Scan(ctx context.Context, r io.Reader) (scanner.Result, error) {
	o, err := c.options(ctx)
	if err != nil {
		return scanner.Result{}, err
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return scanner.Result{}, ctx.Err()
	}
	preview := o.Preview
	if c.cfg.Preview != 0 {
		preview = c.cfg.Preview
	}
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
	res, answered, err := c.respmod(ctx, cn, r, preview, o.Allow204)
	if err != nil && reused && !answered && start >= 0 && ctx.Err() == nil {
		// A kept-alive connection the server had closed: replay once.
		if _, serr := r.(io.Seeker).Seek(start, io.SeekStart); serr == nil {
			if cn, err = c.dial(ctx); err != nil {
				return scanner.Result{}, err
			}
			res, _, err = c.respmod(ctx, cn, r, preview, o.Allow204)
		}
	}
	return res, err
}

// httpHeader is the made-up HTTP response the bytes are the body of.
const httpHeader = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"

func (c *Client) respmod(ctx context.Context, cn *conn, r io.Reader, preview int, allow204 bool) (res scanner.Result, answered bool, err error) {
	sent := sha256.New()
	var sentN int64
	_, err = c.exchange(ctx, cn, func(cn *conn) (*response, error) {
		var req strings.Builder
		req.WriteString("RESPMOD " + c.uri + " ICAP/1.0\r\nHost: " + c.host + "\r\n")
		if allow204 {
			req.WriteString("Allow: 204\r\n")
		}
		if preview >= 0 {
			req.WriteString("Preview: " + strconv.Itoa(preview) + "\r\n")
		}
		if c.cfg.MaxIdle < 0 {
			req.WriteString("Connection: close\r\n")
		}
		fmt.Fprintf(&req, "Encapsulated: res-hdr=0, res-body=%d\r\n\r\n%s", len(httpHeader), httpHeader)
		if err := cn.Write(ctx, c.cfg.Timeout, []byte(req.String()), "icap"); err != nil {
			return nil, err
		}
		body := bufio.NewReaderSize(r, 4096)
		cw := &chunkWriter{cn: cn, ctx: ctx, d: c.cfg.Timeout, h: sent}
		// round sends up to limit bytes (all when negative), ends the
		// chunks ("0; ieof" when a preview holds everything) and reads
		// the answer.
		round := func(limit int64) (*response, bool, error) {
			n, eof, err := cw.copyN(body, limit)
			sentN += n
			if err != nil {
				return nil, eof, err
			}
			if err := cw.end(eof && limit >= 0); err != nil {
				return nil, eof, err
			}
			cn.NC.SetReadDeadline(netx.Deadline(ctx, c.cfg.Timeout))
			resp, err := readResponse(cn.BR)
			answered = answered || err == nil
			return resp, eof, err
		}
		resp, eof, err := round(int64(preview))
		if err == nil && preview >= 0 && !eof && resp.status == 100 {
			resp, eof, err = round(-1)
		}
		if err != nil {
			return nil, err
		}
		if resp.status == 100 {
			return resp, protoErr("unexpected 100 Continue")
		}
		if err := c.interpret(resp, cn.BR, sent, sentN, &res); err != nil || res.Infected() {
			return resp, err
		}
		if !eof && !c.cfg.TrustPreview {
			// Answered "clean" to the preview: the server decided on the
			// first bytes (by type, say) and never read the rest.
			return resp, &scanner.ContentError{Reply: fmt.Sprintf("%d %s after the %d-byte preview, the rest unread", resp.status, resp.reason, sentN), SizeLimit: true}
		}
		if c.cfg.MaxSize <= 0 {
			return resp, nil
		}
		// Servers pass what exceeds their object size limit unscanned,
		// as if clean (c-icap answers with the body echoed).
		total := sentN
		if !eof {
			n, err := io.Copy(io.Discard, body)
			if err != nil {
				return resp, fmt.Errorf("icap: reading input: %w", err)
			}
			total += n
		}
		if total > c.cfg.MaxSize {
			return resp, &scanner.ContentError{Reply: fmt.Sprintf("%d bytes, more than the service scans (%d)", total, c.cfg.MaxSize), SizeLimit: true}
		}
		return resp, nil
	})
	return res, answered, err
}

// interpret turns the final response into a result; it reads the
// encapsulated body so the connection can be reused.
func (c *Client) interpret(resp *response, br *bufio.Reader, sent hash.Hash, sentN int64, res *scanner.Result) error {
	if tag := strings.Trim(resp.get("ISTag"), `"`); tag != "" {
		c.mu.Lock()
		if c.opts != nil && c.opts.ISTag != tag {
			c.opts.fetched = time.Time{} // the service changed: ask OPTIONS again
		}
		c.mu.Unlock()
	}
	switch resp.status {
	case 204:
		return resp.discardBody(br)
	case 200:
	case 413:
		return &scanner.ContentError{Reply: fmt.Sprintf("%d %s", resp.status, resp.reason), SizeLimit: true}
	default:
		return fmt.Errorf("%w: RESPMOD answered %d %s", scanner.ErrProtocol, resp.status, resp.reason)
	}
	e, err := resp.compareBody(br, sent.Sum(nil), sentN)
	if err != nil {
		return err
	}
	names, blocked := verdictFields(resp.fields)
	hn, hb := verdictFields(e.fields)
	names = appendNew(names, hn...)
	if blocked == "" {
		blocked = hb
	}
	switch {
	case len(names) > 0:
		res.Signatures = names
	case blocked != "":
		res.Signatures = []string{"(blocked: " + blocked + ")"}
	case e.status < 200 || e.status > 299:
		res.Signatures = []string{fmt.Sprintf("(blocked: HTTP %d)", e.status)}
	case !e.body:
		// 200 means modified; without a body the object was dropped.
		res.Signatures = []string{"(blocked: no body)"}
	case !e.same:
		res.Signatures = []string{"(blocked: body replaced)"}
	}
	return nil
}

// verdictFields reads the verdict headers engines send, in the ICAP
// response or in the encapsulated HTTP header: the threat names, and the
// first header that says "blocked" without naming a threat. Any header of
// the families X-Virus-*, X-Infection-*, X-Violation(s)-*, X-Threat-*,
// X-Malware-* and X-Block(ed)-* is a verdict (MetaDefender's
// X-Blocked-Reason, vendors' variants); X-Response-Info is one unless it
// says Allowed or Passed.
func verdictFields(fields [][2]string) (names []string, blocked string) {
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" && s != "-" {
			names = appendNew(names, s)
		}
	}
	block := func(name, value string) {
		if blocked == "" {
			blocked = name
			if v := strings.TrimSpace(strings.ReplaceAll(value, "\n", " ")); v != "" {
				blocked += " " + v
			}
		}
	}
	for _, f := range fields {
		name, v := f[0], f[1]
		switch {
		case name == "x-infection-found":
			// Type=0; Resolution=2; Threat=NAME;
			n := len(names)
			for p := range strings.SplitSeq(v, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "Threat") {
					add(val)
				}
			}
			if len(names) == n {
				block(name, v)
			}
		case name == "x-violations-found":
			// N, then per violation four folded lines: filename, threat,
			// id, disposition. "0" alone: none.
			lines := strings.Split(v, "\n")
			n := len(names)
			for i := 2; i < len(lines); i += 4 {
				add(lines[i])
			}
			if len(names) == n && !(len(lines) == 1 && strings.TrimSpace(lines[0]) == "0") {
				block(name, v)
			}
		case name == "x-virus-id", name == "x-virus-name", name == "x-threat-name", name == "x-malware-name":
			n := len(names)
			add(v)
			if len(names) == n {
				block(name, v)
			}
		case name == "x-response-info":
			if !saysClean(v) {
				block(name, v)
			}
		case name == "x-virus-scanned", name == "x-virus-checked":
			// Says a scan ran ("by ClamAV"), not what it found.
		case hasAnyPrefix(name, "x-virus", "x-infection", "x-violation", "x-threat", "x-malware", "x-block"):
			if !saysClean(v) {
				block(name, v)
			}
		}
	}
	return names, blocked
}

// saysClean reports a verdict header value that means nothing was found
// (X-Response-Info: Allowed, X-Virus-Status: Clean).
func saysClean(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "allowed", "passed", "options", "clean", "no", "none", "ok", "0", "false", "not infected":
		return true
	}
	return false
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// appendNew appends the values not yet in list.
func appendNew(list []string, vs ...string) []string {
	for _, v := range vs {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// chunkWriter writes an HTTP/1.1 chunked body.
type chunkWriter struct {
	cn  *conn
	ctx context.Context
	d   time.Duration
	h   hash.Hash // of the bytes sent
	buf [chunkHead + chunkData + 2]byte
}

const (
	chunkHead = 16 // room for the size line
	chunkData = 64 << 10
)

// copyN copies up to n bytes (all when n < 0) as chunks; eof reports that
// r has nothing after them.
func (w *chunkWriter) copyN(r *bufio.Reader, n int64) (written int64, eof bool, err error) {
	for n < 0 || written < n {
		want := int64(chunkData)
		if n >= 0 {
			want = min(want, n-written)
		}
		k, rerr := io.ReadFull(r, w.buf[chunkHead:chunkHead+want])
		if k > 0 {
			head := strconv.FormatInt(int64(k), 16) + "\r\n"
			start := chunkHead - len(head)
			copy(w.buf[start:], head)
			copy(w.buf[chunkHead+k:], "\r\n")
			if err := w.cn.Write(w.ctx, w.d, w.buf[start:chunkHead+k+2], "icap"); err != nil {
				return written, false, err
			}
			w.h.Write(w.buf[chunkHead : chunkHead+k])
			written += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return written, true, nil
		}
		if rerr != nil {
			return written, false, fmt.Errorf("icap: reading input: %w", rerr)
		}
	}
	if _, err := r.Peek(1); err == io.EOF {
		return written, true, nil
	} else if err != nil {
		return written, false, fmt.Errorf("icap: reading input: %w", err)
	}
	return written, false, nil
}

func (w *chunkWriter) end(ieof bool) error {
	last := "0\r\n\r\n"
	if ieof {
		last = "0; ieof\r\n\r\n"
	}
	return w.cn.Write(w.ctx, w.d, []byte(last), "icap")
}
