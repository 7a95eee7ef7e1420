package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/emersion/go-smtp"
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
	// recipients.
	ErrNoRecipients = errors.New("queue: envelope has no recipients")
	// ErrInvalidEnvelope is returned by Enqueue for an envelope a store
	// cannot keep faithfully: more than 10,000 recipients, an address over
	// 1,024 bytes or not valid UTF-8.
	ErrInvalidEnvelope = errors.New("queue: invalid envelope")
	// ErrTLSRequired is returned by the SMTP deliverer when TLS is
	// required and the next hop does not offer STARTTLS.
	ErrTLSRequired = errors.New("queue: next hop does not offer STARTTLS")
	// ErrNoRoute is returned by the SMTP deliverer for a recipient domain
	// without a route and no default route.
	ErrNoRoute = errors.New("queue: no route")
	// ErrPanic is matched by the error recorded when a Deliverer panics.
	ErrPanic = errors.New("queue: deliverer panicked")
)

// BusyReason says why the queue refuses new mail.
type BusyReason string

const (
	BusyDepth BusyReason = "depth" // more entries than Config.MaxDepth
	BusyAge   BusyReason = "age"   // oldest entry older than Config.MaxAge
	BusyDisk  BusyReason = "disk"  // less free space than Config.MinFreeBytes
)

// BusyError is returned by Enqueue when the queue applies backpressure.
// The sender keeps the mail: Reply maps it to a 4xx.
type BusyError struct {
	Reason BusyReason
	Detail string // e.g. "depth 100000 >= 100000"
}

func (e *BusyError) Error() string {
	return "queue: busy (" + string(e.Reason) + "): " + e.Detail
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Reply maps an Enqueue error to the SMTP reply a gateway sends after DATA,
// in one place: a busy disk is 452 4.3.1, a busy queue 451 4.3.2, a message
// over the size limit 552 5.3.4, an envelope the store cannot keep 553
// 5.1.3, and anything else (I/O errors, a failed
// fsync, a closed queue) 451 4.3.0. Texts are generic; details belong in
// the log. Reply(nil) is nil.
func Reply(err error) *smtp.SMTPError {
	var busy *BusyError
	var lim *filter.LimitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &busy) && busy.Reason == BusyDisk:
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	case errors.As(err, &busy):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Queue busy, try again later"}
	case errors.As(err, &lim):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	case errors.Is(err, ErrInvalidEnvelope):
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Invalid address"}
	case errors.Is(err, ErrNoRecipients):
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
}

// ReplyError is a reply from a next hop that refused a command.
type ReplyError struct {
	Host     string // the next hop, host:port
	Command  string // "connect", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA"
	Code     int    // the reply code, e.g. 550
	Enhanced [3]int // the enhanced status code (RFC 3463), zero when absent
	Text     string // the reply text
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("queue: %s %s: %s", e.Host, e.Command, e.Reply())
}

// Reply returns the reply as the remote host sent it, for a DSN's
// Diagnostic-Code: "550 5.7.1 blocked".
func (e *ReplyError) Reply() string {
	if e.Enhanced[0] != 0 {
		return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Text)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Text)
}

// Permanent reports whether the reply is a 5xx.
func (e *ReplyError) Permanent() bool { return e.Code >= 500 && e.Code <= 599 }

// Status returns the enhanced status code for a DSN, derived from the
// reply code when the host sent none.
func (e *ReplyError) Status() string {
	if e.Enhanced[0] == 4 || e.Enhanced[0] == 5 {
		return fmt.Sprintf("%d.%d.%d", e.Enhanced[0], e.Enhanced[1], e.Enhanced[2])
	}
	if e.Permanent() {
		return "5.0.0"
	}
	return "4.0.0"
}

// ConnError is a failure to reach or talk to a next hop: refused
// connections, timeouts, resets, TLS failures. It is always temporary.
type ConnError struct {
	Host string
	Op   string // "dial", "STARTTLS", "DATA", ...
	Err  error
}

func (e *ConnError) Error() string { return "queue: " + e.Host + " " + e.Op + ": " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

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

// Classify returns how a delivery error is handled. Only a 5xx
// *ReplyError is Permanent; a context error, a network error and anything
// unknown are Temporary.
func Classify(err error) Class {
	var re *ReplyError
	if errors.As(err, &re) && re.Permanent() {
		return Permanent
	}
	return Temporary
}

// policyWords are the words by which a refusal names a blocklist or a
// reputation policy rather than a recipient problem.
var policyWords = []string{"block", "dnsbl", "rbl", "blacklist", "blocklist", "denylist", "spamhaus", "spamcop", "barracuda", "reputation", "listed", "banned"}

// IsPolicyRefusal reports whether err is a next hop refusing the relaying
// host itself (a blocklist or reputation policy) rather than a recipient:
// 5.7.x or 4.7.x enhanced codes, 521, 554 and 571 replies that name a
// blocklist, and 550 5.7.1. Such refusals switch to a route's fallback.
func IsPolicyRefusal(err error) bool {
	var re *ReplyError
	if !errors.As(err, &re) || re.Code < 400 || re.Code > 599 {
		return false
	}
	if re.Code == 521 || re.Code == 571 {
		return true
	}
	if re.Enhanced == [3]int{5, 7, 1} || re.Enhanced == [3]int{5, 7, 606} {
		return true
	}
	text := strings.ToLower(re.Text)
	named := false
	for _, w := range policyWords {
		if strings.Contains(text, w) {
			named = true
			break
		}
	}
	return named && (re.Enhanced[1] == 7 || re.Code == 554 || re.Code == 550 || re.Code == 421 || re.Code == 450 || re.Code == 451)
}

// replyError converts go-smtp's error into a *ReplyError, and any other
// error into a *ConnError.
func replyError(host, cmd string, err error) error {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		re := &ReplyError{Host: host, Command: cmd, Code: se.Code, Text: se.Message}
		if se.EnhancedCode[0] > 0 {
			re.Enhanced = [3]int(se.EnhancedCode)
		}
		return re
	}
	return &ConnError{Host: host, Op: cmd, Err: err}
}

// isTimeout reports a deadline or timeout error, for logs and metrics.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
