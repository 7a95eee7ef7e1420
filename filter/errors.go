package filter

import (
	"errors"
	"fmt"
)

// ErrLimit is matched (errors.Is) by every *LimitError.
var ErrLimit = errors.New("filter: limit exceeded")

// ErrNotReady is returned (wrapped) by Readier implementations that are
// still loading.
var ErrNotReady = errors.New("filter: not ready")

// Limit names one of the bounds in Limits.
type Limit string

const (
	LimitMessageBytes Limit = "message-bytes"
	LimitHeaderBytes  Limit = "header-bytes"
	LimitDepth        Limit = "depth"
	LimitParts        Limit = "parts"
	LimitDecodedBytes Limit = "decoded-bytes"
)

// LimitError reports input that exceeded one of the Limits. Parsing stops
// where the limit was hit; what was parsed before stays available.
type LimitError struct {
	Limit Limit
	Max   int64  // the limit in force
	Part  string // the part path where it was hit ("" for the message)
}

func (e *LimitError) Error() string {
	where := ""
	if e.Part != "" {
		where = " in part " + e.Part
	}
	return fmt.Sprintf("filter: %s limit of %d exceeded%s", e.Limit, e.Max, where)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Symbol is the name of the symbol a pipeline adds for this error, e.g.
// MIME_LIMIT_DEPTH.
func (e *LimitError) Symbol() string { return "MIME_LIMIT_" + SymbolName(string(e.Limit)) }

// Reply implements Replier: the message or one header too big is 552
// 5.3.4 (RFC 3463 "message too big for system"); a MIME structure past its
// depth, part or decoded-size limit is 554 5.6.0 (the content, not the
// system, is the problem). A limit this package does not know is the
// generic 451: never a 5xx for something unclassified.
func (e *LimitError) Reply() Reply {
	switch e.Limit {
	case LimitMessageBytes:
		return Reply{Code: 552, Enhanced: "5.3.4", Text: "Message too big"}
	case LimitHeaderBytes:
		return Reply{Code: 552, Enhanced: "5.3.4", Text: "Message header too big"}
	case LimitDepth, LimitParts, LimitDecodedBytes:
		return Reply{Code: 554, Enhanced: "5.6.0", Text: "Message structure exceeds limits"}
	}
	return replyLocal
}
