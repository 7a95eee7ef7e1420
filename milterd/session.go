package milterd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
)

// protocolVersion is the newest milter protocol version spoken (Sendmail
// 8.14+, Postfix 2.6+).
const protocolVersion = 6

// macros the session keeps (the MTA may send many; only these are stored,
// so their memory is bounded).
// {auth_authen} (milter_mail_macros) and {tls_version}
// (milter_helo_macros) are the client's SMTP AUTH identity and TLS, set
// on the transaction at MAIL.
var keptMacros = map[string]bool{"i": true, "j": true, "{daemon_name}": true, "{auth_authen}": true, "{tls_version}": true}

// errQuit ends a session without an error.
var errQuit = errors.New("quit")

// session is one MTA connection. It is not safe for concurrent use: the
// milter protocol is strictly request/response.
type session struct {
	s    *Server
	ctx  context.Context // the server's: cancelled by Close
	conn net.Conn
	r    *packetReader
	w    *packetWriter
	log  *slog.Logger

	negotiated bool
	macros     map[string]string

	env    filter.Envelope
	tx     txn
	inMail bool            // MAIL FROM seen, message not finished
	done   milter.Response // the message was already answered (552 during the body, discard at RCPT)
	data   *dataStream     // the message being streamed into the transaction
	own    map[string]int  // lower-cased own header name → inbound occurrences
	owned  []string        // filter.OwnHeaders()
}

func newSession(s *Server, conn net.Conn) *session {
	return &session{
		s: s, conn: conn,
		r:      newPacketReader(conn, s.cfg.ReadTimeout, s.cfg.MaxPacket),
		w:      newPacketWriter(conn, s.cfg.WriteTimeout),
		log:    s.log.With("mta", conn.RemoteAddr().String()),
		macros: map[string]string{},
		own:    map[string]int{},
		owned:  filter.OwnHeaders(),
	}
}

// serve runs the session until the MTA quits or fails. Whatever happens
// (a protocol error, a timeout, a panic) ends in a closed connection: the
// MTA then applies milter_default_action (tempfail when configured as
// the docs say), so nothing passes unfiltered.
func (ss *session) serve(ctx context.Context) {
	ss.ctx = ctx
	defer func() {
		if p := recover(); p != nil {
			ss.s.metrics.Add("portcullis_milter_panics_total", 1)
			ss.log.ErrorContext(ss.ctx, "milter session panic", "panic", p, "stack", string(debug.Stack()))
		}
		ss.endMessage()
		if ss.tx != nil {
			ss.tx.Close()
		}
		ss.conn.Close()
	}()
	for {
		code, data, err := ss.r.read()
		if err != nil {
			ss.readError(err)
			return
		}
		if err := ss.handle(ctx, code, data); err != nil {
			if err != errQuit {
				ss.protocolError(err)
			}
			return
		}
		if err := ss.w.flush(); err != nil {
			ss.log.WarnContext(ss.ctx, "milter write", "err", err)
			return
		}
	}
}

func (ss *session) readError(err error) {
	switch {
	case errors.Is(err, io.EOF) && ss.data == nil && !ss.inMail:
		ss.log.DebugContext(ss.ctx, "milter connection closed by the MTA")
	case errors.Is(err, ErrProtocol):
		ss.protocolError(err)
	default:
		ss.s.metrics.Add("portcullis_milter_protocol_errors_total", 1, "reason", "read")
		ss.log.WarnContext(ss.ctx, "milter read", "err", err, "in_message", ss.inMail)
	}
}

func (ss *session) protocolError(err error) {
	reason := "protocol"
	var pe *PacketError
	if errors.As(err, &pe) {
		reason = strings.ReplaceAll(pe.Reason, " ", "_")
	}
	ss.s.metrics.Add("portcullis_milter_protocol_errors_total", 1, "reason", reason)
	ss.log.WarnContext(ss.ctx, "milter protocol error; closing", "err", err)
}

func protoErr(code byte, reason string) error {
	return &PacketError{Command: code, Reason: reason}
}

// handle dispatches one command. Responses are buffered in ss.w.
func (ss *session) handle(ctx context.Context, code byte, data []byte) error {
	if !ss.negotiated && milter.Code(code) != milter.CodeOptNeg {
		return protoErr(code, "command before option negotiation")
	}
	switch milter.Code(code) {
	case milter.CodeOptNeg:
		return ss.optneg(data)
	case milter.CodeMacro:
		ss.macro(data)
		return nil
	case milter.CodeConn:
		return ss.connect(ctx, data)
	case milter.CodeHelo:
		return ss.helo(ctx, data)
	case milter.CodeMail:
		return ss.mail(ctx, data)
	case milter.CodeRcpt:
		return ss.rcpt(ctx, data)
	case milter.CodeData, 'U': // DATA, an unknown SMTP command
		if ss.tx == nil {
			return protoErr(code, "command before connect")
		}
		return ss.respond(milter.RespContinue)
	case milter.CodeHeader:
		return ss.header(ctx, data)
	case milter.CodeEOH:
		return ss.eoh(ctx)
	case milter.CodeBody:
		return ss.body(ctx, data)
	case milter.CodeEOB:
		return ss.eob(ctx, data)
	case milter.CodeAbort:
		ss.abort()
		return nil
	case milter.CodeQuitNewConn:
		ss.abort()
		if ss.tx != nil {
			ss.tx.Close()
			ss.tx = nil
		}
		ss.env = filter.Envelope{}
		clear(ss.macros)
		return nil
	case milter.CodeQuit:
		return errQuit
	}
	return protoErr(code, "unknown command")
}

func (ss *session) respond(r milter.Response) error {
	m := r.Response()
	return ss.w.write(m.Code, m.Data)
}

// optneg answers the MTA's offer with the newest common version, only
// the actions the milter uses, and the events it does not need left out.
func (ss *session) optneg(data []byte) error {
	if ss.negotiated {
		return protoErr('O', "second option negotiation")
	}
	if len(data) < 12 {
		return protoErr('O', "short option negotiation")
	}
	version := binary.BigEndian.Uint32(data[0:4])
	actions := milter.OptAction(binary.BigEndian.Uint32(data[4:8]))
	if version < 2 {
		return protoErr('O', fmt.Sprintf("milter protocol version %d is too old", version))
	}
	need := milter.OptAddHeader | milter.OptChangeHeader
	if ss.s.cfg.Quarantine == PostfixHold {
		need |= milter.OptQuarantine
	}
	if actions&need != need {
		return protoErr('O', fmt.Sprintf("MTA allows actions %#x, the milter needs %#x", actions, need))
	}
	// No event is skipped (data[8:12], the steps the MTA could leave out,
	// is not used): Postfix sends an event's macros even when the
	// event itself is skipped, and a lone macro packet, which needs no
	// reply, stalls the next command behind Nagle and the milter's delayed
	// ACK for 40 ms (measured: a quarter of the throughput). DATA and
	// unknown commands are answered with continue.
	ss.negotiated = true
	var out [12]byte
	binary.BigEndian.PutUint32(out[0:4], min(version, protocolVersion))
	binary.BigEndian.PutUint32(out[4:8], uint32(need))
	binary.BigEndian.PutUint32(out[8:12], 0)
	return ss.w.write(byte(milter.CodeOptNeg), out[:])
}

func (ss *session) macro(data []byte) {
	if len(data) == 0 {
		return
	}
	kv := cstrings(data[1:])
	for i := 0; i+1 < len(kv); i += 2 {
		if keptMacros[kv[i]] {
			ss.macros[kv[i]] = kv[i+1]
		}
	}
}

// cstrings splits NUL-terminated strings; a last one without its NUL
// counts too.
func cstrings(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// connect begins the transaction with the client's address and runs the
// connect stage.
func (ss *session) connect(ctx context.Context, data []byte) error {
	if ss.tx != nil {
		return protoErr('C', "second connect")
	}
	host, ip, err := parseConnect(data)
	if err != nil {
		return err
	}
	ss.env = filter.Envelope{ClientIP: ip}
	if host != "" && host != "unknown" && !strings.HasPrefix(host, "[") {
		ss.env.Hostname = host // Postfix sends its verified client name, "[addr]" when there is none
	}
	ss.log = ss.s.log.With("mta", ss.conn.RemoteAddr().String(), "client", ip.String(), "client_name", host)
	ss.tx = ss.s.begin(ss.env)
	if err := ss.s.ready(); err != nil {
		return ss.refuse("connect", filter.ErrorReply(err), err)
	}
	return ss.stage("connect", ss.tx.Connect(ctx))
}

// parseConnect reads "hostname\0 family [port address\0]".
func parseConnect(data []byte) (string, netip.Addr, error) {
	i := bytes.IndexByte(data, 0)
	if i < 0 || i+1 >= len(data) {
		return "", netip.Addr{}, protoErr('C', "malformed connect")
	}
	host, rest := string(data[:i]), data[i+1:]
	family := milter.ProtoFamily(rest[0])
	rest = rest[1:]
	if family == milter.FamilyUnknown {
		return host, netip.Addr{}, nil
	}
	if len(rest) < 2 {
		return "", netip.Addr{}, protoErr('C', "malformed connect: no port")
	}
	addr := cstring(rest[2:])
	if family != milter.FamilyInet && family != milter.FamilyInet6 {
		return host, netip.Addr{}, nil // a unix socket path is no client address
	}
	ip, err := netip.ParseAddr(strings.TrimPrefix(addr, "IPv6:"))
	if err != nil {
		return host, netip.Addr{}, nil // unknown stays invalid, never a made-up address
	}
	return host, ip.Unmap(), nil
}

func (ss *session) helo(ctx context.Context, data []byte) error {
	if ss.tx == nil {
		return protoErr('H', "helo before connect")
	}
	if ss.inMail { // HELO in the middle of a transaction resets it (RFC 5321 4.1.4)
		ss.abort()
	}
	name := cstring(data)
	ss.env.Helo = name
	return ss.stage("helo", ss.tx.Helo(ctx, name))
}

func (ss *session) mail(ctx context.Context, data []byte) error {
	if ss.tx == nil {
		return protoErr('M', "mail before connect")
	}
	if ss.inMail || ss.done != nil {
		ss.abort()
	}
	args := cstrings(data)
	if len(args) == 0 {
		return protoErr('M', "mail without sender")
	}
	ss.inMail = true
	if err := ss.s.ready(); err != nil {
		return ss.refuse("mail", filter.ErrorReply(err), err)
	}
	// Postfix sends the MAIL macros just before MAIL, the HELO ones (TLS)
	// before HELO: both are known now.
	ss.tx.SetAuth(ss.macros["{auth_authen}"])
	ss.tx.SetTLS(ss.macros["{tls_version}"] != "")
	return ss.stage("mail", ss.tx.Mail(ctx, unbracket(args[0])))
}

func (ss *session) rcpt(ctx context.Context, data []byte) error {
	if !ss.inMail {
		return protoErr('R', "rcpt before mail")
	}
	args := cstrings(data)
	if len(args) == 0 {
		return protoErr('R', "rcpt without recipient")
	}
	if ss.done != nil {
		return ss.respond(ss.done)
	}
	return ss.stage("rcpt", ss.tx.Rcpt(ctx, unbracket(args[0])))
}

func unbracket(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		return s[1 : len(s)-1]
	}
	return s
}

// stage answers an envelope stage: reject and tempfail end it now (the
// earliest stage that decides), discard too from MAIL on (the milter
// protocol has no discard at connect or HELO: the transaction remembers
// it and MAIL answers it); anything else waits for the message.
func (ss *session) stage(name string, v filter.Verdict) error {
	if v.Action == filter.Discard && name != "connect" && name != "helo" {
		ss.log.InfoContext(ss.ctx, "milter discarded", filter.LogMessageID, ss.tx.ID(), "stage", name, "score", v.Score, "symbols", symbolNames(v.Symbols, 20), "queue_id", ss.macros["i"])
		ss.s.metrics.Add("portcullis_milter_messages_total", 1, "action", "discard")
		ss.done = milter.RespDiscard // whatever else of this message comes
		return ss.respond(milter.RespDiscard)
	}
	if v.Action == filter.Reject || v.Action == filter.Tempfail {
		r := v.Reply
		if r.Code == 0 {
			r = filter.ReplyFor(v.Action, v.Stage)
		}
		ss.log.InfoContext(ss.ctx, "milter refused", filter.LogMessageID, ss.tx.ID(), "stage", name, "action", v.Action.String(), "reply", r.String(), "score", v.Score, "symbols", symbolNames(v.Symbols, 20), "queue_id", ss.macros["i"])
		ss.s.metrics.Add("portcullis_milter_refused_total", 1, "stage", name, "reason", v.Action.String())
		if name == "mail" {
			ss.inMail = false
		}
		return ss.respond(Response(r))
	}
	return ss.respond(milter.RespContinue)
}

// refuse answers a stage with a reply for a failure of the milter itself.
func (ss *session) refuse(stage string, r filter.Reply, err error) error {
	ss.log.WarnContext(ss.ctx, "milter not ready", "stage", stage, "reply", r.String(), "err", err)
	ss.s.metrics.Add("portcullis_milter_refused_total", 1, "stage", stage, "reason", "not_ready")
	if stage == "mail" {
		ss.inMail = false
	}
	return ss.respond(Response(r))
}

// dataStream feeds the reconstructed message (headers as received, the
// blank line, body chunks) through a pipe into Transaction.Data, which
// spools it with the pipeline's size limit: the milter never holds more
// than one packet of it.
type dataStream struct {
	pw    *io.PipeWriter
	done  chan struct{}
	v     filter.Verdict
	err   error
	short bool // a write failed: the transaction did not get all of it
	start time.Time
}

var errAborted = errors.New("milterd: message aborted by the MTA")

func (ss *session) startData(ctx context.Context) *dataStream {
	if ss.data != nil {
		return ss.data
	}
	pr, pw := io.Pipe()
	ds := &dataStream{pw: pw, done: make(chan struct{}), start: time.Now()}
	tx := ss.tx
	go func() {
		defer close(ds.done)
		defer pr.CloseWithError(errDataDone)
		defer func() {
			if p := recover(); p != nil {
				ss.s.metrics.Add("portcullis_milter_panics_total", 1)
				ss.log.ErrorContext(ss.ctx, "milter data panic", "panic", p, "stack", string(debug.Stack()))
				ds.err = fmt.Errorf("milterd: panic in DATA: %v", p)
			}
		}()
		ds.v, ds.err = tx.Data(ctx, pr)
	}()
	ss.data = ds
	return ds
}

var errDataDone = errors.New("milterd: transaction stopped reading")

// write sends b to the transaction; false means it stopped reading.
func (ds *dataStream) write(b []byte) bool {
	if ds.short {
		return false
	}
	if _, err := ds.pw.Write(b); err != nil {
		ds.short = true
		return false
	}
	return true
}

// finish closes the stream and waits for the transaction's verdict.
func (ds *dataStream) finish() (filter.Verdict, error) {
	ds.pw.Close()
	<-ds.done
	if ds.err == nil && ds.short {
		return ds.v, errors.New("milterd: the transaction returned before reading the whole message")
	}
	return ds.v, ds.err
}

// failedEarly answers a header or body chunk after which the transaction
// stopped reading (e.g. the message exceeds the size limit: 552 5.3.4).
func (ss *session) failedEarly() error {
	_, err := ss.data.finish()
	if err == nil {
		err = errors.New("milterd: the transaction stopped reading the message")
	}
	r := filter.ErrorReply(err)
	ss.log.WarnContext(ss.ctx, "milter message refused while streaming", "reply", r.String(), "err", err, "queue_id", ss.macros["i"])
	ss.s.metrics.Add("portcullis_milter_messages_total", 1, "action", "error")
	ss.done = Response(r)
	ss.data = nil
	return ss.respond(Response(r))
}

func (ss *session) header(ctx context.Context, data []byte) error {
	if !ss.inMail {
		return protoErr('L', "header before mail")
	}
	if ss.done != nil {
		return ss.respond(ss.done)
	}
	i := bytes.IndexByte(data, 0)
	if i <= 0 {
		return protoErr('L', "malformed header")
	}
	name, value := data[:i], cstring(data[i+1:])
	if lname := strings.ToLower(string(name)); ss.isOwn(lname) {
		ss.own[lname]++
	}
	ds := ss.startData(ctx)
	var line []byte
	line = append(line, name...)
	line = append(line, ':', ' ')
	line = appendCRLF(line, value)
	line = append(line, '\r', '\n')
	if !ds.write(line) {
		return ss.failedEarly()
	}
	return ss.respond(milter.RespContinue)
}

// appendCRLF appends a header value with its folding line breaks as CRLF
// (the MTA may send them as LF).
func appendCRLF(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\r' && i+1 < len(v) && v[i+1] == '\n':
			continue
		case c == '\n':
			dst = append(dst, '\r', '\n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func (ss *session) isOwn(lname string) bool {
	for _, n := range ss.owned {
		if strings.EqualFold(n, lname) {
			return true
		}
	}
	return false
}

func (ss *session) eoh(ctx context.Context) error {
	if !ss.inMail {
		return protoErr('N', "end of headers before mail")
	}
	if ss.done != nil {
		return ss.respond(ss.done)
	}
	if !ss.startData(ctx).write([]byte("\r\n")) {
		return ss.failedEarly()
	}
	return ss.respond(milter.RespContinue)
}

func (ss *session) body(ctx context.Context, data []byte) error {
	if !ss.inMail {
		return protoErr('B', "body before mail")
	}
	if ss.done != nil {
		return ss.respond(ss.done)
	}
	if len(data) > 0 && !ss.startData(ctx).write(data) {
		return ss.failedEarly()
	}
	return ss.respond(milter.RespContinue)
}

// eob ends the message: the verdict becomes milter actions.
func (ss *session) eob(ctx context.Context, data []byte) error {
	if !ss.inMail {
		return protoErr('E', "end of body before mail")
	}
	if ss.done != nil {
		err := ss.respond(ss.done)
		ss.endMessage()
		return err
	}
	ds := ss.startData(ctx)
	if len(data) > 0 {
		ds.write(data)
	}
	v, err := ds.finish()
	ss.data = nil
	ss.s.metrics.Observe("portcullis_milter_eom_seconds", time.Since(ds.start).Seconds())
	if err != nil {
		r := filter.ErrorReply(err)
		ss.log.WarnContext(ss.ctx, "milter message failed", "reply", r.String(), "err", err, "queue_id", ss.macros["i"], filter.LogMessageID, ss.tx.ID())
		ss.s.metrics.Add("portcullis_milter_messages_total", 1, "action", "error")
		err := ss.respond(Response(r))
		ss.endMessage()
		return err
	}
	err = ss.apply(ctx, v)
	ss.endMessage()
	return err
}

// apply turns the final verdict into milter actions.
func (ss *session) apply(ctx context.Context, v filter.Verdict) error {
	action := v.Action.String()
	log := ss.log.With(filter.LogMessageID, ss.tx.ID(), "queue_id", ss.macros["i"], "action", action, "score", v.Score, "symbols", symbolNames(v.Symbols, 20))
	defer func() { ss.s.metrics.Add("portcullis_milter_messages_total", 1, "action", action) }()
	switch v.Action {
	case filter.Reject, filter.Tempfail:
		r := v.Reply
		if r.Code == 0 {
			r = filter.ReplyFor(v.Action, filter.Data)
		}
		log.InfoContext(ss.ctx, "milter verdict", "reply", r.String())
		return ss.respond(Response(r))
	case filter.Discard:
		log.InfoContext(ss.ctx, "milter verdict")
		return ss.respond(milter.RespDiscard)
	case filter.Quarantine:
		if ss.s.cfg.Quarantine == Store {
			hctx, cancel := context.WithTimeout(ctx, ss.s.cfg.HoldTimeout)
			err := ss.s.cfg.Hold(hctx, ss.tx.Message(), v)
			cancel()
			if err != nil {
				r := filter.ErrorReply(err)
				action = "hold_failed"
				log.WarnContext(ss.ctx, "milter hold failed", "reply", r.String(), "err", err)
				return ss.respond(Response(r))
			}
			log.InfoContext(ss.ctx, "milter verdict", "quarantine", "store")
			return ss.respond(milter.RespDiscard)
		}
		if err := ss.editHeaders(v, true); err != nil {
			return err
		}
		if err := ss.w.write(byte(milter.ActQuarantine), []byte(quarantineReason(v)+"\x00")); err != nil {
			return err
		}
		log.InfoContext(ss.ctx, "milter verdict", "quarantine", "postfix-hold")
		return ss.respond(milter.RespAccept)
	}
	if err := ss.editHeaders(v, v.Action == filter.AddHeader || ss.s.cfg.HeadersOnAccept); err != nil {
		return err
	}
	log.InfoContext(ss.ctx, "milter verdict")
	return ss.respond(milter.RespAccept)
}

// editHeaders removes the inbound copies of the headers Portcullis writes
// (a sender must not forge X-Spam-Status: No) and, when add is set,
// inserts the verdict's headers at the top in order. Deletions go from
// the last occurrence to the first so the per-name index (1-based,
// SMFIR_CHGHEADER with an empty value) of the ones still to delete does
// not shift, and before the insertions so an inserted header is never
// the one deleted.
func (ss *session) editHeaders(v filter.Verdict, add bool) error {
	for _, name := range ss.owned {
		for i := ss.own[strings.ToLower(name)]; i >= 1; i-- {
			if err := ss.w.write(byte(milter.ActChangeHeader), headerEdit(uint32(i), name, "")); err != nil {
				return err
			}
		}
	}
	if !add {
		return nil
	}
	for i, h := range v.Headers {
		if err := ss.w.write(byte(milter.ActInsertHeader), headerEdit(uint32(i), h.Name, h.Value)); err != nil {
			return err
		}
	}
	return nil
}

// headerEdit encodes index, name and value for SMFIR_CHGHEADER or
// SMFIR_INSHEADER. The MTA wants LF line ends in a folded value, and a
// NUL would cut it short.
func headerEdit(index uint32, name, value string) []byte {
	b := binary.BigEndian.AppendUint32(nil, index)
	b = append(b, strings.ReplaceAll(name, "\x00", "")...)
	b = append(b, 0)
	value = strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\x00", "")
	b = append(b, value...)
	return append(b, 0)
}

func quarantineReason(v filter.Verdict) string {
	return safeText("Portcullis: " + symbolNames(v.Symbols, 10))
}

func symbolNames(syms []filter.Symbol, n int) string {
	var b strings.Builder
	for i, s := range syms {
		if i == n {
			fmt.Fprintf(&b, " +%d", len(syms)-n)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.Name)
	}
	return b.String()
}

// abort drops the message in progress (SMFIC_ABORT, RSET, a new MAIL):
// connect and HELO evidence stay.
func (ss *session) abort() {
	if ss.data != nil {
		ss.data.pw.CloseWithError(errAborted)
		<-ss.data.done
		ss.data = nil
	}
	ss.endMessage()
}

// endMessage resets the per-message state and the transaction (which
// removes its spool).
func (ss *session) endMessage() {
	if ss.data != nil {
		ss.data.pw.CloseWithError(errAborted)
		<-ss.data.done
		ss.data = nil
	}
	if ss.tx != nil && (ss.inMail || ss.done != nil) {
		ss.tx.Reset()
	}
	ss.inMail, ss.done = false, nil
	clear(ss.own)
}
