package milterd

import (
	"context"
	"io"

	"github.com/portcullis-mail/portcullis/filter"
)

// txn is what a session needs of a *filter.Transaction; tests put a
// scripted one in its place.
type txn interface {
	ID() string
	Connect(ctx context.Context) filter.Verdict
	Helo(ctx context.Context, name string) filter.Verdict
	SetAuth(user string)
	SetTLS(on bool)
	Mail(ctx context.Context, from string) filter.Verdict
	Rcpt(ctx context.Context, to string) filter.Verdict
	Data(ctx context.Context, r io.Reader) (filter.Verdict, error)
	Message() *filter.Message
	Reset()
	Close() error
}

var _ txn = (*filter.Transaction)(nil)

func pipelineBegin(p *filter.Pipeline) func(filter.Envelope) txn {
	return func(env filter.Envelope) txn { return p.Begin(env) }
}
