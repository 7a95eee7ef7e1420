package filter

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Reply is an SMTP reply: code, enhanced status code (RFC 3463) and text.
// It is the one reply shape of every Portcullis package; the front-ends
// convert it to go-smtp's or the milter's in one call.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

func (r Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// Temporary reports whether the reply is a 4xx.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports whether the reply is a 5xx.
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// Replier is implemented by errors that know the SMTP reply they mean
// (a *LimitError is 552 5.3.4 for the message size; a queue that is full
// says 452 4.3.1). ErrorReply prefers it to any other mapping.
type Replier interface {
	Reply() Reply
}

// Replies that ErrorReply and ReplyFor give.
var (
	replyOK       = Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}
	replyHeld     = Reply{Code: 250, Enhanced: "2.0.0", Text: "Message held for inspection"}
	replyTempfail = Reply{Code: 451, Enhanced: "4.7.1", Text: "Temporary failure, please try again later"}
	replyDenied   = Reply{Code: 554, Enhanced: "5.7.1", Text: "Access denied"}
	replyRefused  = Reply{Code: 550, Enhanced: "5.7.1", Text: "Message refused by policy"}
	replyLocal    = Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary local problem, please try again later"}
	replyTimeout  = Reply{Code: 451, Enhanced: "4.4.2", Text: "Timed out, please try again later"}
	replyNotReady = Reply{Code: 451, Enhanced: "4.3.2", Text: "Not ready, please try again later"}
)

// ReplyFor is the one place where actions become SMTP replies. The text is
// generic on purpose: what a filter found is for the logs and headers, not
// for the peer. A temporary problem is never a 5xx. Quarantine answers 250
// with a text that says the message was held; the caller sends it only
// after the hold is durable. Discard answers a plain 250.
func ReplyFor(a Action, s Stage) Reply {
	switch a {
	case Tempfail:
		return replyTempfail
	case Reject:
		if s == Connect || s == Helo {
			return replyDenied
		}
		return replyRefused
	case Quarantine:
		return replyHeld
	}
	return replyOK
}

// ErrorReply is the one function that maps an error of any Portcullis
// package to the reply a peer is given:
//
//   - nil is 250 2.0.0 OK;
//   - an error that is (or wraps) a Replier gives its own reply;
//   - a context deadline or cancellation is 451 4.4.2;
//   - ErrNotReady is 451 4.3.2;
//   - anything else is 451 4.3.0: an error nobody classified is never a
//     5xx, or an engine outage would bounce mail.
//
// The text is generic and safe to send: a Replier's text is kept only when
// it is printable ASCII on one line, and a reply whose code, class or
// enhanced code do not agree is replaced by the generic 451. Details belong
// in the log, never in the reply.
func ErrorReply(err error) Reply {
	if err == nil {
		return replyOK
	}
	var rp Replier
	if errors.As(err, &rp) {
		return sanitizeReply(rp.Reply())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return replyTimeout
	case errors.Is(err, ErrNotReady):
		return replyNotReady
	}
	return replyLocal
}

// sanitizeReply makes a reply from elsewhere safe to put on the wire: a
// code in 2xx–5xx, an enhanced code of the same class (RFC 3463) or none,
// and one line of printable text (a CR or LF would let it forge replies).
func sanitizeReply(r Reply) Reply {
	if r.Code < 200 || r.Code > 599 {
		return replyLocal
	}
	class := r.Code / 100
	if r.Enhanced != "" && !validEnhanced(r.Enhanced, class) {
		if class == 4 || class == 5 {
			r.Enhanced = fmt.Sprintf("%d.0.0", class)
		} else {
			r.Enhanced = "2.0.0"
		}
	}
	if class == 3 {
		// 354 and friends are protocol steps, not an answer to an error.
		return replyLocal
	}
	r.Text = printable(r.Text)
	if r.Text == "" {
		switch class {
		case 2:
			r.Text = replyOK.Text
		case 4:
			r.Text = replyLocal.Text
		default:
			r.Text = "Refused"
		}
	}
	return r
}

// validEnhanced reports whether e is class.subject.detail (RFC 3463: class
// 2, 4 or 5 matching the reply code, subject 0–999, detail 0–999).
func validEnhanced(e string, class int) bool {
	parts := strings.Split(e, ".")
	if len(parts) != 3 || parts[0] != fmt.Sprint(class) || (class != 2 && class != 4 && class != 5) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// maxReplyText bounds a reply's text: RFC 5321 allows 512 octets per reply
// line, code included.
const maxReplyText = 400

// printable keeps printable ASCII and turns anything else (CR, LF, NUL,
// non-ASCII) into a space, trimmed and bounded.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxReplyText; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = ' '
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}
