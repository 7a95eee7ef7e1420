package relay

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

var (
	// ErrTLSRequired is returned when TLS is required and the next hop
	// does not offer STARTTLS.
	ErrTLSRequired = errors.New("relay: next hop does not offer STARTTLS")
	// ErrNoRoute is returned for a recipient domain without a route and no
	// default route. It is temporary: a configuration mistake must not
	// bounce mail.
	ErrNoRoute = errors.New("relay: no route")
	// ErrNoRoutes is returned by New for a Config without routes, or with
	// a route without hosts or with a malformed host.
	ErrNoRoutes = errors.New("relay: invalid routes")
)

// ReplyError is a reply from a next hop that refused a command. It
// implements queue.RemoteError: the queue bounces a recipient on a 5xx
// one and quotes it in the DSN.
type ReplyError struct {
	Host    string       // the next hop, host:port
	Command string       // "connect", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA"
	Reply   filter.Reply // as the host sent it; Enhanced is "" when it sent none
}

var _ queue.RemoteError = (*ReplyError)(nil)

func (e *ReplyError) Error() string {
	return fmt.Sprintf("relay: %s %s: %s", e.Host, e.Command, quote(e.Reply))
}

// RemoteHost implements queue.RemoteError.
func (e *ReplyError) RemoteHost() string { return e.Host }

// RemoteReply implements queue.RemoteError.
func (e *ReplyError) RemoteReply() filter.Reply { return e.Reply }

// Permanent reports whether the reply is a 5xx.
func (e *ReplyError) Permanent() bool { return e.Reply.Code >= 500 && e.Reply.Code <= 599 }

// quote writes a reply as the host sent it: "550 5.7.1 blocked", or
// "550 blocked" without an enhanced code.
func quote(r filter.Reply) string {
	if r.Enhanced == "" {
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
}

// ConnError is a failure to reach or talk to a next hop: refused
// connections, timeouts, resets, TLS failures. It is always temporary.
type ConnError struct {
	Host string
	Op   string // "dial", "STARTTLS", "DATA", ...
	Err  error
}

func (e *ConnError) Error() string { return "relay: " + e.Host + " " + e.Op + ": " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

// policyWords are the words by which a refusal names a blocklist or a
// reputation policy rather than a recipient problem.
var policyWords = []string{"block", "dnsbl", "rbl", "blacklist", "blocklist", "denylist", "spamhaus", "spamcop", "barracuda", "reputation", "listed", "banned"}

// IsPolicyRefusal reports whether err is a next hop refusing the relaying
// host itself (a blocklist or reputation policy) rather than a recipient:
// 5.7.x or 4.7.x enhanced codes, 521, 554 and 571 replies that name a
// blocklist, and 550 5.7.1. Such refusals switch to a route's fallback.
func IsPolicyRefusal(err error) bool {
	var re *ReplyError
	if !errors.As(err, &re) || re.Reply.Code < 400 || re.Reply.Code > 599 {
		return false
	}
	r := re.Reply
	if r.Code == 521 || r.Code == 571 {
		return true
	}
	if r.Enhanced == "5.7.1" || r.Enhanced == "5.7.606" {
		return true
	}
	text := strings.ToLower(r.Text)
	named := false
	for _, w := range policyWords {
		if strings.Contains(text, w) {
			named = true
			break
		}
	}
	security := strings.HasPrefix(r.Enhanced, "5.7.") || strings.HasPrefix(r.Enhanced, "4.7.")
	return named && (security || r.Code == 554 || r.Code == 550 || r.Code == 421 || r.Code == 450 || r.Code == 451)
}

// replyError converts go-smtp's error into a *ReplyError, and any other
// error into a *ConnError.
func replyError(host, cmd string, err error) error {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		re := &ReplyError{Host: host, Command: cmd, Reply: filter.Reply{Code: se.Code, Text: se.Message}}
		if c := se.EnhancedCode; c[0] > 0 {
			re.Reply.Enhanced = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
		}
		return re
	}
	return &ConnError{Host: host, Op: cmd, Err: err}
}
