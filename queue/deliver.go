package queue

import (
	"context"
	"io"
)

// Outgoing is one delivery attempt handed to a Deliverer.
type Outgoing struct {
	ID       ID
	From     string   // envelope sender; "" is the null sender
	To       []string // the recipients still pending
	Size     int64
	Attempts int // this attempt's number, from 1

	body Body
}

// Body returns a new reader over the whole message; a deliverer may read
// it more than once (another next hop, a fallback route).
func (o *Outgoing) Body() io.Reader { return io.NewSectionReader(o.body, 0, o.body.Size()) }

// Deliverer delivers messages. Deliver returns one error per recipient of
// m.To, in order: nil for delivered, otherwise an error that Classify
// turns into a retry (temporary) or a bounce (permanent). A Deliverer must
// honour ctx. A panic is recovered, counted as a crash of the message, and
// after Config.MaxCrashes the message is held (the poison guard).
type Deliverer interface {
	Deliver(ctx context.Context, m *Outgoing) []error
}

// DeliverFunc adapts a function to a Deliverer.
type DeliverFunc func(ctx context.Context, m *Outgoing) []error

// Deliver calls f.
func (f DeliverFunc) Deliver(ctx context.Context, m *Outgoing) []error { return f(ctx, m) }

// all returns n copies of err: the same outcome for every recipient.
func all(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
