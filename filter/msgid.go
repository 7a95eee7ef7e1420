package filter

import "context"

// WithMessageID returns a context that carries id as the message ID
// MessageIDOf returns. A front-end or a router passes it to the queue and
// the quarantine so that their log lines name the message too.
func WithMessageID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}
