package queue

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Limits of a stored envelope: a record claiming more is corrupt, and an
// envelope over them is refused at Enqueue (ErrInvalidEnvelope).
const (
	maxRecipients = 10000
	maxAddrBytes  = 1024
)

// EntryRecord is the stored form of an Entry, the one codec every Store
// shares: JSON with short, stable field names and times in Unix
// milliseconds. A store embeds it in its own record beside what it adds
// (the spool a body CRC, JetStream the body's chunking and SHA-256);
// encoding/json flattens the embedded fields.
type EntryRecord struct {
	ID          string   `json:"id"`
	ClientIP    string   `json:"ip,omitempty"`
	Helo        string   `json:"helo,omitempty"`
	MailFrom    string   `json:"from"`
	RcptTo      []string `json:"to"`
	AuthUser    string   `json:"auth,omitempty"`
	TLS         bool     `json:"tls,omitempty"`
	Size        int64    `json:"size"`
	Created     int64    `json:"created"`
	State       State    `json:"state"`
	Done        []string `json:"done,omitempty"`
	Attempts    int      `json:"attempts"`
	Inflight    bool     `json:"inflight,omitempty"`
	Crashes     int      `json:"crashes,omitempty"`
	NextAttempt int64    `json:"next"`
	LastError   string   `json:"err,omitempty"`
}

// NewEntryRecord returns the stored form of e.
func NewEntryRecord(e Entry) EntryRecord {
	r := EntryRecord{
		ID: string(e.ID), Helo: e.Envelope.Helo, MailFrom: e.Envelope.MailFrom,
		RcptTo: e.Envelope.RcptTo, AuthUser: e.Envelope.AuthUser, TLS: e.Envelope.TLS,
		Size: e.Size, Created: e.Created.UnixMilli(), State: e.State,
		Done: e.Done, Attempts: e.Attempts, Inflight: e.Inflight, Crashes: e.Crashes,
		NextAttempt: e.NextAttempt.UnixMilli(), LastError: e.LastError,
	}
	if e.Envelope.ClientIP.IsValid() {
		r.ClientIP = e.Envelope.ClientIP.String()
	}
	return r
}

// Entry validates the record and returns the entry it stores. Anything
// unexpected (an invalid ID, no or too many recipients, negative counts,
// an unknown state, an address over 1,024 bytes, a bad client IP) is an
// error matching ErrCorrupt, so a store moves a foreign or damaged record
// aside rather than trust it.
func (r EntryRecord) Entry() (Entry, error) {
	bad := func(what string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w: entry record: %s", ErrCorrupt, what)
	}
	switch {
	case !validID(r.ID):
		return bad("invalid id")
	case len(r.RcptTo) == 0 || len(r.RcptTo) > maxRecipients || len(r.Done) > len(r.RcptTo):
		return bad("recipient count")
	case r.Size < 0 || r.Attempts < 0 || r.Crashes < 0:
		return bad("negative count")
	case r.State != Queued && r.State != Held:
		return bad("unknown state")
	case len(r.MailFrom) > maxAddrBytes:
		return bad("sender too long")
	}
	for _, a := range append(r.RcptTo[:len(r.RcptTo):len(r.RcptTo)], r.Done...) {
		if a == "" || len(a) > maxAddrBytes {
			return bad("recipient")
		}
	}
	e := Entry{
		ID: ID(r.ID),
		Envelope: filter.Envelope{
			Helo: r.Helo, MailFrom: r.MailFrom, RcptTo: r.RcptTo, AuthUser: r.AuthUser, TLS: r.TLS,
		},
		Size: r.Size, Created: time.UnixMilli(r.Created), State: r.State, Done: r.Done,
		Attempts: r.Attempts, Inflight: r.Inflight, Crashes: r.Crashes,
		NextAttempt: time.UnixMilli(r.NextAttempt), LastError: r.LastError,
	}
	if r.ClientIP != "" {
		ip, err := netip.ParseAddr(r.ClientIP)
		if err != nil {
			return bad("client ip")
		}
		e.Envelope.ClientIP = ip
	}
	return e, nil
}
