package filter

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"time"
)

// Transaction is one SMTP transaction, or one milter conversation, driven
// from start to end by a front-end: begun with the connection's facts,
// then told HELO, MAIL FROM, each RCPT TO and the DATA stream, in the
// order the client sends them. It is to a Pipeline what a go-smtp Session
// is to its Backend: one per connection, not safe for concurrent use.
//
// Each call runs only the filters of its own stage, once, and returns the
// verdict on all the evidence so far: the Data verdict weighs the symbols
// of every stage, so a client scoring 4 at connect and a body scoring 4
// reach add-header at 5. A stage whose verdict is tempfail, reject or
// discard ends the transaction early; later calls return that verdict
// without running filters (a rejected client stays rejected after Reset).
// A recipient refused at Rcpt (reject or tempfail) is refused alone: it is
// not added to the envelope and its evidence is dropped.
//
// Filters learn the stage from StageOf(ctx) and, at Rcpt, the recipient
// being added from RecipientOf(ctx); the message they are given carries the
// envelope so far.
//
// Reset starts the next transaction on the same connection (RSET): it
// keeps the connect and HELO evidence and drops the rest. Mail after an
// earlier Mail, and Helo in the middle of a transaction, reset by
// themselves, as SMTP does. Close releases the spooled message.
type Transaction struct {
	p     *Pipeline
	env   Envelope
	id    string
	start time.Time

	connect, helo, mail, data evidence // mail: mailfrom and the accepted rcpts
	connStage                 Stage    // the last connection-level stage run
	connEnded                 bool     // connect or helo ended it: survives Reset
	mailSeen                  bool     // Mail was called in this transaction
	ended                     bool     // this transaction is over
	verdict                   Verdict

	spool *Spool
	msg   *Message
}

type evidence struct {
	symbols  []Symbol
	demanded Action
}

func (e *evidence) add(st stageResult) {
	e.symbols = append(e.symbols, st.symbols...)
	e.demanded = e.demanded.Max(st.demanded)
}

// Begin starts a transaction for a new connection. env carries what is
// known of the connection (ClientIP, Hostname, TLS, AuthUser); MailFrom
// and RcptTo are filled in by Mail and Rcpt.
func (p *Pipeline) Begin(env Envelope) *Transaction {
	env.RcptTo = slices.Clone(env.RcptTo)
	t := &Transaction{p: p, env: env, id: newID(), start: time.Now(), connStage: Connect}
	t.verdict = t.decide(Connect, nil)
	return t
}

// ID returns the transaction's unique ID, the MessageID of its verdicts
// and the "msgid" of its log lines. Reset gives the next transaction a new
// one.
func (t *Transaction) ID() string { return t.id }

// Envelope returns the envelope so far.
func (t *Transaction) Envelope() Envelope {
	env := t.env
	env.RcptTo = slices.Clone(env.RcptTo)
	return env
}

// Verdict returns the latest verdict on the accumulated evidence (a
// refused recipient's verdict is only returned by its Rcpt call).
func (t *Transaction) Verdict() Verdict { return t.verdict }

// Message returns the spooled message after Data, nil before it and after
// Reset or Close. It is valid until Reset or Close.
func (t *Transaction) Message() *Message { return t.msg }

// Connect runs the connect-stage filters (client IP, reverse DNS, TLS).
func (t *Transaction) Connect(ctx context.Context) Verdict {
	return t.connStep(ctx, Connect)
}

// Helo records the HELO/EHLO name and runs the helo-stage filters. A
// second HELO (after STARTTLS, say) replaces the first and its evidence;
// in the middle of a mail transaction it resets it first, as RFC 5321
// says of EHLO.
func (t *Transaction) Helo(ctx context.Context, name string) Verdict {
	if t.connEnded {
		return t.verdict
	}
	if t.mailSeen || t.ended {
		t.Reset()
	}
	t.env.Helo = name
	return t.connStep(ctx, Helo)
}

func (t *Transaction) connStep(ctx context.Context, s Stage) Verdict {
	if t.ended {
		return t.verdict
	}
	ctx = t.withID(ctx)
	st := t.p.run(ctx, s, t.envelopeOnly())
	if s == Connect {
		t.connect = evidence{}
		t.connect.add(st)
	} else {
		t.helo = evidence{}
		t.helo.add(st)
	}
	t.connStage = s
	t.verdict = t.decide(s, nil)
	if ends(t.verdict.Action) {
		t.ended, t.connEnded = true, true
		t.p.done(ctx, t.verdict, t.start)
	}
	return t.verdict
}

// SetAuth records the identity the client authenticated as (SMTP AUTH,
// RFC 4954; a milter's {auth_authen} macro), "" for none. AUTH happens
// after Begin and before MAIL, so a front-end calls SetAuth before Mail:
// the mailfrom, rcpt and data filters, the verdicts and the envelope the
// router stores then carry it. Reset and the next Mail keep it: it
// belongs to the session, like the HELO name.
func (t *Transaction) SetAuth(user string) { t.env.AuthUser = user }

// SetTLS records whether the session is encrypted, for a front-end that
// learns it after Begin (STARTTLS; a milter's {tls_version} macro, sent
// with MAIL). Like SetAuth it applies from the next stage on and
// survives Reset; the connect and helo stages already run keep what
// they saw.
func (t *Transaction) SetTLS(on bool) { t.env.TLS = on }

// Mail records the reverse path ("" is the null sender) and runs the
// mailfrom-stage filters. MAIL starts a mail transaction: after an earlier
// Mail (refused, or through to Data) it first resets, as Reset does, so a
// front-end needs Reset only for RSET. Only a connection refused at
// Connect or Helo stays refused.
func (t *Transaction) Mail(ctx context.Context, from string) Verdict {
	if t.connEnded {
		return t.verdict
	}
	if t.mailSeen || t.ended {
		t.Reset()
	}
	t.mailSeen = true
	ctx = t.withID(ctx)
	t.env.MailFrom = from
	t.mail.add(t.p.run(ctx, MailFrom, t.envelopeOnly()))
	t.verdict = t.decide(MailFrom, nil)
	if ends(t.verdict.Action) {
		t.ended = true
		t.p.done(ctx, t.verdict, t.start)
	}
	return t.verdict
}

// Rcpt runs the rcpt-stage filters for one more recipient, which they see
// in RecipientOf(ctx) and at the end of the envelope's RcptTo. A verdict
// of reject or tempfail refuses this recipient only: it is not added and
// its evidence is dropped. Discard ends the transaction.
func (t *Transaction) Rcpt(ctx context.Context, to string) Verdict {
	if t.ended {
		return t.verdict
	}
	ctx = t.withID(ctx)
	t.env.RcptTo = append(t.env.RcptTo, to)
	st := t.p.run(context.WithValue(ctx, recipientKey{}, to), Rcpt, t.envelopeOnly())
	v := t.decide(Rcpt, &st)
	switch v.Action {
	case Reject, Tempfail:
		t.env.RcptTo = t.env.RcptTo[:len(t.env.RcptTo)-1]
		t.p.done(ctx, v, t.start, "rcpt", to)
		return v
	}
	t.mail.add(st)
	t.verdict = v
	if ends(v.Action) {
		t.ended = true
		t.p.done(ctx, v, t.start)
	}
	return v
}

// Data spools r (SpoolConfig of the pipeline's Options: memory below a
// threshold, a temporary file above, the size limit enforced while
// reading), runs the data-stage filters over the message and returns the
// verdict on the evidence of every stage. A message spooled in memory is
// given to the filters in one slice (Message.Bytes, Spool.Bytes), read in
// place as a message handed over in memory is.
//
// err is the spool's error, if r could not be read whole: a *LimitError
// when the message is too big (552 5.3.4), the reader's error otherwise.
// The verdict then says tempfail or reject with ErrorReply(err) as its
// reply, and the transaction is over. Calling Data again replaces the
// message and its evidence.
func (t *Transaction) Data(ctx context.Context, r io.Reader) (Verdict, error) {
	if t.ended {
		return t.verdict, nil
	}
	ctx = t.withID(ctx)
	t.dropMessage()
	sp, err := NewSpool(ctx, r, t.p.spool)
	if err != nil {
		t.verdict = t.spoolFailed(err)
		t.ended = true
		t.p.done(ctx, t.verdict, t.start, "err", err)
		return t.verdict, err
	}
	t.spool = sp
	t.msg = NewMessage(t.Envelope(), sp, sp.Size(), t.p.limits)
	if raw, ok := sp.Bytes(); ok {
		// In memory: the filters read it in place (Message.Bytes), as
		// they do a message handed to them in memory; reads through
		// ReaderAt still fail once the transaction closed the spool.
		t.msg.mem = raw
	}
	t.data.add(t.p.run(ctx, Data, t.msg))
	t.verdict = t.decide(Data, nil)
	t.ended = true
	t.p.done(ctx, t.verdict, t.start, "size", sp.Size())
	return t.verdict, nil
}

func (t *Transaction) spoolFailed(err error) Verdict {
	sym := Symbol{Name: "MESSAGE_READ_FAIL", Detail: err.Error()}
	var le *LimitError
	if errors.As(err, &le) {
		sym.Name = le.Symbol()
	}
	reply := ErrorReply(err)
	action := Tempfail
	if reply.Permanent() {
		action = Reject
	}
	v := t.decide(Data, &stageResult{symbols: []Symbol{sym}, demanded: action})
	v.Action, v.Reply = action, reply
	return v
}

// Reset ends the current transaction and starts the next one on the same
// connection: the connect and HELO evidence (and a verdict that ended the
// connection) stay, the sender, recipients, message and their evidence go,
// and the transaction gets a new ID.
func (t *Transaction) Reset() {
	t.dropMessage()
	t.env.MailFrom, t.env.RcptTo = "", nil
	t.mail, t.data = evidence{}, evidence{}
	t.mailSeen = false
	t.id, t.start = newID(), time.Now()
	if t.connEnded {
		t.verdict.MessageID = t.id
		return
	}
	t.ended = false
	t.verdict = t.decide(t.connStage, nil)
}

// Close releases the spooled message. It is idempotent; the transaction
// must not be used after it.
func (t *Transaction) Close() error {
	err := t.dropMessage()
	t.ended = true
	return err
}

func (t *Transaction) dropMessage() error {
	t.data = evidence{}
	t.msg = nil
	err := t.spool.Close()
	t.spool = nil
	return err
}

// envelopeOnly is the message filters see before DATA.
func (t *Transaction) envelopeOnly() *Message {
	return NewMessage(t.Envelope(), nil, 0, t.p.limits)
}

// decide weighs all the evidence so far, plus extra when given.
func (t *Transaction) decide(s Stage, extra *stageResult) Verdict {
	all := [...]*evidence{&t.connect, &t.helo, &t.mail, &t.data}
	n := 0
	for _, e := range all {
		n += len(e.symbols)
	}
	syms := make([]Symbol, 0, n+4)
	demanded := Accept
	for _, e := range all {
		syms = append(syms, e.symbols...)
		demanded = demanded.Max(e.demanded)
	}
	if extra != nil {
		syms = append(syms, extra.symbols...)
		demanded = demanded.Max(extra.demanded)
	}
	v := t.p.policy.Decide(s, syms, demanded)
	v.MessageID = t.id
	return v
}

// ends reports whether a verdict ends the transaction.
func ends(a Action) bool { return a == Tempfail || a == Reject || a == Discard }

type stageKey struct{}
type recipientKey struct{}
type idKey struct{}

// MessageIDOf returns the ID of the transaction a filter runs for (see
// Transaction.ID), "" outside a transaction. A filter that logs about the
// message adds it under LogMessageID.
func MessageIDOf(ctx context.Context) string {
	s, _ := ctx.Value(idKey{}).(string)
	return s
}

// withID puts the transaction's ID in ctx for the filters and log lines.
func (t *Transaction) withID(ctx context.Context) context.Context {
	return context.WithValue(ctx, idKey{}, t.id)
}

// StageOf returns the stage a filter runs at, from the context a Pipeline
// gives it; Data when the context carries none.
func StageOf(ctx context.Context) Stage {
	if s, ok := ctx.Value(stageKey{}).(Stage); ok {
		return s
	}
	return Data
}

// RecipientOf returns, at the Rcpt stage, the recipient being added (the
// filter's message has it last in Envelope.RcptTo too); "" elsewhere.
func RecipientOf(ctx context.Context) string {
	s, _ := ctx.Value(recipientKey{}).(string)
	return s
}

// LogMessageID is the log attribute key of a transaction's ID, used by
// every package that logs about one message so its story can be joined.
const LogMessageID = "msgid"

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newID returns a 20-character ID that sorts by time: 48 bits of Unix
// milliseconds, then 52 random bits.
func newID() string {
	var b [13]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return idEncoding.EncodeToString(b[:])[:20]
}
