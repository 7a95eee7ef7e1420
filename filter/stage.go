package filter

import (
	"fmt"
	"net/netip"
	"strings"
)

// Stage is the point of an SMTP transaction at which a filter runs. A
// gateway can refuse a client at Connect, before it has sent any mail.
type Stage int

const (
	Connect  Stage = iota // client IP (and TLS, AUTH user) known
	Helo                  // the HELO/EHLO name known
	MailFrom              // MAIL FROM known
	Rcpt                  // one more RCPT TO known (RecipientOf says which)
	Data                  // the whole message known
)

// Stages returns every stage in transaction order.
func Stages() []Stage { return []Stage{Connect, Helo, MailFrom, Rcpt, Data} }

var stageNames = [...]string{Connect: "connect", Helo: "helo", MailFrom: "mailfrom", Rcpt: "rcpt", Data: "data"}

func (s Stage) String() string {
	if s < 0 || int(s) >= len(stageNames) {
		return fmt.Sprintf("stage(%d)", int(s))
	}
	return stageNames[s]
}

// ParseStage parses "connect", "helo", "mailfrom", "rcpt" or "data".
func ParseStage(s string) (Stage, error) {
	for i, n := range stageNames {
		if strings.EqualFold(s, n) {
			return Stage(i), nil
		}
	}
	return Connect, fmt.Errorf("filter: unknown stage %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Stage) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Stage) UnmarshalText(b []byte) error {
	v, err := ParseStage(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Envelope is what the SMTP transaction says about a message, as opposed to
// what the message says about itself.
type Envelope struct {
	ClientIP netip.Addr // the connecting client; invalid when unknown
	Hostname string     // the client's verified reverse DNS name, "" when unknown
	Helo     string     // the HELO/EHLO argument
	MailFrom string     // the reverse path without brackets; "" is the null sender
	RcptTo   []string   // forward paths without brackets
	AuthUser string     // the SASL user, "" when not authenticated
	TLS      bool       // the session was encrypted
}

// Domain returns the domain of an address ("" when it has none), lower-cased.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(addr[i+1:]), ".")
}
