package queue

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/portcullis-mail/portcullis/filter"
)

var (
	// ErrClosed is returned after Shutdown or Close.
	ErrClosed = errors.New("queue: closed")
	// ErrNotFound is returned for an ID the store does not hold.
	ErrNotFound = errors.New("queue: no such entry")
	// ErrCorrupt is matched by a body or entry that failed its checksum
	// or could not be decoded. The entry is moved aside, never deleted.
	ErrCorrupt = errors.New("queue: corrupt entry")
	// ErrBusy is matched by every *BusyError.
	ErrBusy = errors.New("queue: busy")
	// ErrNoRecipients is returned by Enqueue for an envelope without
	// recipients; its reply is 554 5.5.1.
	ErrNoRecipients error = &replyErr{"queue: envelope has no recipients",
		filter.Reply{Code: 554, Enhanced: "5.5.1", Text: "No valid recipients"}}
	// ErrInvalidEnvelope is returned by Enqueue for an envelope a store
	// cannot keep faithfully: more than 10,000 recipients, an address over
	// 1,024 bytes or not valid UTF-8; its reply is 553 5.1.3.
	ErrInvalidEnvelope error = &replyErr{"queue: invalid envelope",
		filter.Reply{Code: 553, Enhanced: "5.1.3", Text: "Invalid address"}}
	// ErrNoDeliverer is returned by Open, New and NewAttempter for a
	// Config without a Deliverer (and, for a Queue, without StoreOnly).
	ErrNoDeliverer = errors.New("queue: no Deliverer")
	// ErrPanic is matched by the error recorded when a Deliverer panics.
	ErrPanic = errors.New("queue: deliverer panicked")
	// ErrInFlight is matched by the error Release, Delete, Retry and
	// Bounce return for an entry a delivery attempt holds right now.
	ErrInFlight = errors.New("queue: entry is being delivered")
)

// BusyReason says why the queue refuses new mail.
type BusyReason string

const (
	BusyDepth BusyReason = "depth" // more entries than Config.MaxDepth
	BusyAge   BusyReason = "age"   // oldest entry older than Config.MaxAge
	BusyDisk  BusyReason = "disk"  // less free space than Config.MinFreeBytes
)

// BusyError is returned by Enqueue when the queue applies backpressure.
// The sender keeps the mail: its Reply is a 4xx.
type BusyError struct {
	Reason BusyReason
	Detail string // e.g. "depth 100000 >= 100000"
}

func (e *BusyError) Error() string {
	return "queue: busy (" + string(e.Reason) + "): " + e.Detail
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Reply implements filter.Replier: a busy disk is 452 4.3.1, a busy
// queue 451 4.3.2. The sender keeps the mail; details are in Detail, for
// the log.
func (e *BusyError) Reply() filter.Reply {
	if e.Reason == BusyDisk {
		return filter.Reply{Code: 452, Enhanced: "4.3.1", Text: "Insufficient system storage, try again later"}
	}
	return filter.Reply{Code: 451, Enhanced: "4.3.2", Text: "Queue busy, try again later"}
}

var (
	_ filter.Replier = (*BusyError)(nil)
	_ filter.Replier = (*replyErr)(nil)
)

// replyErr is a sentinel error that knows its SMTP reply
// (filter.Replier), so that filter.ErrorReply maps it, wrapped or not.
type replyErr struct {
	msg   string
	reply filter.Reply
}

func (e *replyErr) Error() string { return e.msg }

// Reply implements filter.Replier.
func (e *replyErr) Reply() filter.Reply { return e.reply }

// RemoteError is implemented by a delivery error that carries a next
// hop's reply (relay.ReplyError does). Only such an error with a 5xx
// reply bounces a recipient (Classify), and a bounce quotes it.
type RemoteError interface {
	error
	RemoteHost() string        // the next hop, host:port; "" when unknown
	RemoteReply() filter.Reply // the reply as the host sent it
}

// Class is how a delivery failure is handled.
type Class int

const (
	// Temporary failures are retried with backoff until the maximum queue
	// lifetime: 4xx replies, timeouts, connection errors and every error
	// the queue does not recognise (an unknown error never bounces mail).
	Temporary Class = iota
	// Permanent failures bounce: 5xx replies.
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "temporary"
}

// Classify returns how a delivery error is handled. Only a RemoteError
// with a 5xx reply is Permanent; a context error, a network error and
// anything unknown are Temporary.
func Classify(err error) Class {
	var re RemoteError
	if errors.As(err, &re) {
		if c := re.RemoteReply().Code; c >= 500 && c <= 599 {
			return Permanent
		}
	}
	return Temporary
}

// isTimeout reports a deadline or timeout error, for logs and metrics.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
