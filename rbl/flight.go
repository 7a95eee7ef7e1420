package rbl

import (
	"context"
	"sync"
	"sync/atomic"
)

// flights shares one resolution among every caller asking the same name
// at the same time. Unlike golang.org/x/sync/singleflight's DoChan it
// spawns no goroutine: the first caller (the leader) resolves in its own,
// under its own context, so its cancellation reaches the socket. A caller
// that waited on a leader who gave up tries again rather than inherit
// someone else's cancellation.
type flights struct {
	mu      sync.Mutex
	calls   map[string]*call
	waiting atomic.Int64 // callers waiting on a leader now
}

type call struct {
	done       chan struct{}
	e          entry
	err        error
	leaderGone bool // the leader's context ended: the error is not the name's
}

// do returns fn's result for key, running fn at most once at a time per key.
func (f *flights) do(ctx context.Context, key string, fn func(context.Context) (entry, error)) (entry, error) {
	for {
		f.mu.Lock()
		if f.calls == nil {
			f.calls = map[string]*call{}
		}
		if cl, ok := f.calls[key]; ok {
			f.mu.Unlock()
			f.waiting.Add(1)
			select {
			case <-cl.done:
				f.waiting.Add(-1)
				if cl.leaderGone && ctx.Err() == nil {
					continue
				}
				return cl.e, cl.err
			case <-ctx.Done():
				f.waiting.Add(-1)
				return entry{}, netErr(ctx, ctx.Err())
			}
		}
		cl := &call{done: make(chan struct{})}
		f.calls[key] = cl
		f.mu.Unlock()

		cl.e, cl.err = fn(ctx)
		cl.leaderGone = cl.err != nil && ctx.Err() != nil
		f.mu.Lock()
		delete(f.calls, key)
		f.mu.Unlock()
		close(cl.done)
		return cl.e, cl.err
	}
}
