// Package netx holds the socket helpers the engine adapters share: a
// liveness peek for pooled connections and deadlines that honour a context.
package netx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Deadline is the earlier of now+d and ctx's deadline.
func Deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(t) {
		return cd
	}
	return t
}

// CtxErr blames ctx for an I/O error when ctx ended, or when its deadline
// (which was the socket's deadline) has passed: the caller gave up, the
// engine did not fail. prefix names the package ("clamd").
func CtxErr(ctx context.Context, prefix string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%v)", prefix, ctx.Err(), err)
	}
	var ne net.Error
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: %w (%v)", prefix, context.DeadlineExceeded, err)
	}
	return err
}

// Abort makes every pending and future I/O on c fail at once when ctx
// ends; call the returned stop when the exchange is over. stop reports
// false when ctx already aborted c.
func Abort(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}
