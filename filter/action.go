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

// ActionSetting is an Action-valued setting that can be left unset. Its
// zero value is unset, distinct from Accept, so that a configuration field
// left out means the documented default of its package, never a silent
// accept. Set makes one; Or reads it with the default filled in.
//
// In text (YAML, JSON) it is an action's spelling, or "" for unset.
type ActionSetting struct {
	action Action
	set    bool
}

// Set returns the setting that says a.
func Set(a Action) ActionSetting { return ActionSetting{action: a, set: true} }

// IsSet reports whether the setting says an action.
func (s ActionSetting) IsSet() bool { return s.set }

// Or returns the action the setting says, or def when it is unset.
func (s ActionSetting) Or(def Action) Action {
	if !s.set {
		return def
	}
	return s.action
}

// String returns the action's spelling, or "unset".
func (s ActionSetting) String() string {
	if !s.set {
		return "unset"
	}
	return s.action.String()
}

// MarshalText implements encoding.TextMarshaler; unset is "".
func (s ActionSetting) MarshalText() ([]byte, error) {
	if !s.set {
		return []byte{}, nil
	}
	return s.action.MarshalText()
}

// UnmarshalText implements encoding.TextUnmarshaler; "" is unset.
func (s *ActionSetting) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = ActionSetting{}
		return nil
	}
	a, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*s = Set(a)
	return nil
}
