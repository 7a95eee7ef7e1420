package rbl

import (
	"errors"
	"fmt"
	"net/netip"
)

// Errors of this package. Every unknown lookup wraps one of them (errors.Is).
var (
	ErrConfig       = errors.New("rbl: invalid configuration")
	ErrTimeout      = errors.New("rbl: timeout")
	ErrServFail     = errors.New("rbl: SERVFAIL")
	ErrRefused      = errors.New("rbl: REFUSED") // the resolver refused (rcode 5)
	ErrRcode        = errors.New("rbl: unexpected rcode")
	ErrQueryRefused = errors.New("rbl: query refused") // the list answered a refused code
	ErrBadAnswer    = errors.New("rbl: answer outside 127.0.0.0/8")
	ErrTruncated    = errors.New("rbl: truncated answer")
	ErrMismatch     = errors.New("rbl: answer does not match the question")
	ErrNoResolver   = errors.New("rbl: no healthy resolver")
	ErrBackoff      = errors.New("rbl: list backed off after refusals")
	ErrUnhealthy    = errors.New("rbl: failed health check")
	// ErrNotAnswer: the reply holds records that do not answer the A
	// question (AAAA, TXT, a CNAME chain or loop).
	ErrNotAnswer = errors.New("rbl: reply does not answer the question")
	// ErrUndefinedCode: an answer none of the list's codes defines (zen's
	// 127.0.0.128): unknown for that list, not a listing.
	ErrUndefinedCode = errors.New("rbl: return code the list does not define")
	// ErrNotPublic: the address is loopback, private, CGNAT, link-local,
	// documentation or otherwise not public, and is not sent to DNS lists
	// (see Config.LookupNonPublic).
	ErrNotPublic = errors.New("rbl: address is not public")
)

// LookupError is why a lookup is unknown.
type LookupError struct {
	List     string // list name
	Name     string // the name queried
	Resolver string // the last resolver tried, "" when none was
	Err      error
}

func (e *LookupError) Error() string {
	s := fmt.Sprintf("rbl: %s: %s", e.List, e.Name)
	if e.Resolver != "" {
		s += " via " + e.Resolver
	}
	return s + ": " + e.Err.Error()
}

func (e *LookupError) Unwrap() error { return e.Err }

// AnswerError is an answer that cannot mean "listed": outside
// 127.0.0.0/8 (an NXDOMAIN-hijacking resolver), a refused code, or a code
// the list does not define.
type AnswerError struct {
	Answer netip.Addr
	Err    error // ErrBadAnswer, ErrQueryRefused or ErrUndefinedCode
}

func (e *AnswerError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Answer) }
func (e *AnswerError) Unwrap() error { return e.Err }

// reason is a short label of an error for metrics.
func reason(err error) string {
	for _, r := range []struct {
		err   error
		label string
	}{
		{ErrTimeout, "timeout"}, {ErrServFail, "servfail"}, {ErrRefused, "refused"},
		{ErrQueryRefused, "query-refused"}, {ErrBadAnswer, "bad-answer"}, {ErrTruncated, "truncated"},
		{ErrMismatch, "mismatch"}, {ErrNoResolver, "no-resolver"}, {ErrBackoff, "backoff"},
		{ErrUnhealthy, "unhealthy"}, {ErrRcode, "rcode"}, {ErrNotAnswer, "not-answer"},
		{ErrUndefinedCode, "undefined-code"}, {ErrNotPublic, "not-public"},
	} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "network"
}
