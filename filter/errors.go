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
