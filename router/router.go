package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

// Queue takes messages for delivery. *queue.Queue implements it. Enqueue
// returns only when the message is durable; its errors say which reply to
// give (filter.Replier).
type Queue interface {
	Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (queue.ID, error)
}

// Holder keeps messages in quarantine. *quarantine.Manager implements it.
// Hold returns only when the message is durable.
type Holder interface {
	Hold(ctx context.Context, m *filter.Message, v filter.Verdict) (quarantine.ID, error)
}

var (
	// ErrNoQueue is returned by New without Config.Queue.
	ErrNoQueue = errors.New("router: no queue")
	// ErrNoQuarantine is returned by New without Config.Quarantine: a
	// quarantine verdict would have nowhere to go.
	ErrNoQuarantine = errors.New("router: no quarantine")
	// ErrNoMessage is logged when Route is given a transaction that has
	// not received DATA; the reply is 451.
	ErrNoMessage = errors.New("router: transaction has no message")
	// ErrUnknownAction is logged for a verdict action the router does not
	// know; the reply is 451.
	ErrUnknownAction = errors.New("router: unknown action")
)

// Config configures a Router. Queue and Quarantine are required.
type Config struct {
	Queue      Queue
	Quarantine Holder
	// KeepDiscarded holds discarded messages in the quarantine instead of
	// dropping them; a failed hold is then a 4xx.
	KeepDiscarded bool
	// HeadersOnAccept adds the verdict headers to accepted messages too,
	// not only to those the verdict says add-header.
	HeadersOnAccept bool
	Logger          *slog.Logger   // nil discards
	Metrics         filter.Metrics // nil discards
}

// Router carries out verdicts. It is safe for concurrent use.
type Router struct {
	cfg     Config
	log     *slog.Logger
	metrics filter.Metrics
	own     []string
}

// New returns a router.
func New(cfg Config) (*Router, error) {
	if cfg.Queue == nil {
		return nil, ErrNoQueue
	}
	if cfg.Quarantine == nil {
		return nil, ErrNoQuarantine
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{cfg: cfg, log: log, metrics: filter.OrNop(cfg.Metrics), own: filter.OwnHeaders()}, nil
}

// Route carries out the transaction's verdict after DATA and returns the
// reply to give the client: a 250 only once the message is durable where
// the verdict sends it, a 4xx when storing failed, the verdict's own reply
// for tempfail and reject.
func (r *Router) Route(ctx context.Context, tx *filter.Transaction) filter.Reply {
	return r.route(ctx, tx.ID(), tx.Envelope(), tx.Message(), tx.Verdict())
}

// outcome is what became of one message, for the log and the metrics.
type outcome struct {
	name string // queued, held, discarded, refused, failed
	id   string // the queue or quarantine ID
	err  error
}

func (r *Router) route(ctx context.Context, txID string, env filter.Envelope, m *filter.Message, v filter.Verdict) filter.Reply {
	start := time.Now()
	if txID != "" {
		ctx = filter.WithMessageID(ctx, txID)
	}
	o, reply := r.carryOut(ctx, env, m, v)
	r.metrics.Add("portcullis_router_messages_total", 1, "action", v.Action.String(), "outcome", o.name)
	r.metrics.Observe("portcullis_router_seconds", time.Since(start).Seconds(), "outcome", o.name)
	attrs := []any{filter.LogMessageID, txID, "action", v.Action.String(), "score", v.Score, "outcome", o.name,
		"reply", reply.String(), "duration", time.Since(start)}
	if o.id != "" {
		attrs = append(attrs, "id", o.id)
	}
	if o.err != nil {
		r.log.ErrorContext(ctx, "route", append(attrs, "err", o.err)...)
	} else {
		r.log.InfoContext(ctx, "route", attrs...)
	}
	return reply
}

func (r *Router) carryOut(ctx context.Context, env filter.Envelope, m *filter.Message, v filter.Verdict) (outcome, filter.Reply) {
	switch v.Action {
	case filter.Tempfail, filter.Reject:
		return outcome{name: "refused"}, verdictReply(v)
	}
	if m == nil || !m.HasBody() {
		return fail(ErrNoMessage)
	}
	switch v.Action {
	case filter.Accept, filter.AddHeader:
		var add []filter.Header
		if v.Action == filter.AddHeader || r.cfg.HeadersOnAccept {
			add = v.Headers
		}
		body := sized{filter.WithHeaders(m.Reader(), add, r.own), m.Size() + headersSize(add)}
		id, err := r.cfg.Queue.Enqueue(ctx, env, body)
		if err != nil {
			return fail(fmt.Errorf("enqueue: %w", err))
		}
		rep := filter.ReplyFor(v.Action, v.Stage)
		rep.Text = "OK: queued as " + string(id)
		return outcome{name: "queued", id: string(id)}, rep
	case filter.Quarantine:
		id, err := r.cfg.Quarantine.Hold(ctx, m, v)
		if err != nil {
			return fail(fmt.Errorf("hold: %w", err))
		}
		return outcome{name: "held", id: string(id)}, filter.ReplyFor(filter.Quarantine, v.Stage)
	case filter.Discard:
		if !r.cfg.KeepDiscarded {
			return outcome{name: "discarded"}, filter.ReplyFor(filter.Discard, v.Stage)
		}
		id, err := r.cfg.Quarantine.Hold(ctx, m, v)
		if err != nil {
			return fail(fmt.Errorf("hold discarded: %w", err))
		}
		return outcome{name: "discarded", id: string(id)}, filter.ReplyFor(filter.Discard, v.Stage)
	}
	return fail(fmt.Errorf("%w %v", ErrUnknownAction, v.Action))
}

// sized is a message body with its expected length, so the queue reads
// it into one buffer (queue.Enqueue's SizeHint).
type sized struct {
	io.Reader
	hint int64
}

func (s sized) SizeHint() int64 { return s.hint }

// headersSize is at least what adding hs costs in bytes: folding adds
// at most a line break and a tab at each space or comma. An estimate
// short of the truth would cost a large message a second buffer of twice
// its size in the queue (and a copy).
func headersSize(hs []filter.Header) int64 {
	n := 0
	for _, h := range hs {
		n += len(h.Name) + len(h.Value) + 4 // ": " and CRLF
		n += 3 * (strings.Count(h.Value, " ") + strings.Count(h.Value, ","))
	}
	return int64(n)
}

func fail(err error) (outcome, filter.Reply) {
	rep := filter.ErrorReply(err)
	if !rep.Temporary() && !rep.Permanent() {
		// A store error must never read as success.
		rep = filter.ErrorReply(errors.New("store failed"))
	}
	return outcome{name: "failed", err: err}, rep
}

// verdictReply is the reply of a verdict that refuses the message: its
// own, or the one its action gives when it carries none. Stored messages
// get filter.ReplyFor's 250 whatever the verdict says: once a message is
// durable, the client must not be told anything else.
func verdictReply(v filter.Verdict) filter.Reply {
	r := v.Reply
	if (v.Action == filter.Tempfail && !r.Temporary()) || (v.Action == filter.Reject && !r.Permanent()) {
		return filter.ReplyFor(v.Action, v.Stage)
	}
	return r
}
