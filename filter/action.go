package filter

import (
	"fmt"
	"strings"
)

// Action is what a gateway does with a message. Actions are ordered by
// severity: when several filters demand different actions, the most severe
// wins (accept < add-header < quarantine < tempfail < discard < reject).
//
// The zero value is Accept, so a Result that demands nothing demands Accept.
type Action int

const (
	Accept     Action = iota // deliver as is
	AddHeader                // deliver with the verdict headers added
	Quarantine               // keep in the quarantine store; recoverable
	Tempfail                 // 4xx: the sender keeps the mail and retries
	Discard                  // accept and drop; only ever an explicit demand
	Reject                   // 5xx: the sender is told the mail is refused
)

var actionNames = [...]string{
	Accept:     "accept",
	AddHeader:  "add-header",
	Quarantine: "quarantine",
	Tempfail:   "tempfail",
	Discard:    "discard",
	Reject:     "reject",
}

// String returns the action's canonical spelling, e.g. "add-header".
func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return actionNames[a]
}

// ParseAction parses the canonical spelling of an action.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if strings.EqualFold(s, n) {
			return Action(i), nil
		}
	}
	return Accept, fmt.Errorf("filter: unknown action %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if a < 0 || int(a) >= len(actionNames) {
		return nil, fmt.Errorf("filter: invalid action %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Max returns the more severe of a and b.
func (a Action) Max(b Action) Action {
	if b > a {
		return b
	}
	return a
}

// Delivers reports whether a message with this action is handed on for
// delivery (accept and add-header).
func (a Action) Delivers() bool { return a == Accept || a == AddHeader }
