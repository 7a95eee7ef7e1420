package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// ID names one queued message. IDs sort by enqueue time.
type ID string

// newID returns a fresh ID: 16 hex digits of Unix nanoseconds and 16 of
// randomness, so that IDs sort by age and never collide across processes
// that share a store.
func newID(now time.Time) ID {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand never fails on Linux (Go 1.24+ panics instead)
	return ID(strconv.FormatInt(now.UnixNano(), 16) + hex.EncodeToString(r[:]))
}

// validID reports whether s can be an ID: 1 to 64 bytes of [0-9A-Za-z._-].
// Stores use it to refuse entries that do not belong to them.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// State is where an entry stands.
type State int

const (
	// Queued entries are delivered when their next attempt is due.
	Queued State = iota
	// Held entries are kept and never attempted: poison messages that
	// crashed delivery repeatedly, and dead letters under the Hold bounce
	// policy. An operator releases or removes them.
	Held
)

func (s State) String() string {
	switch s {
	case Queued:
		return "queued"
	case Held:
		return "held"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Entry is the metadata of one queued message. A store keeps it beside the
// body and returns it unchanged (times to the millisecond).
type Entry struct {
	ID       ID
	Envelope filter.Envelope
	Size     int64     // body bytes
	Created  time.Time // when Enqueue made it durable

	State       State
	Done        []string  // recipients finished (delivered or bounced)
	Attempts    int       // delivery attempts started, persisted before each one
	Inflight    bool      // an attempt started and its outcome is not yet recorded
	Crashes     int       // attempts that ended in a panic or a process death
	NextAttempt time.Time // when the next attempt is due
	LastError   string    // the last failure, for people
}

// Pending returns the recipients not yet finished, in envelope order.
func (e *Entry) Pending() []string {
	var out []string
	for _, r := range e.Envelope.RcptTo {
		if !slices.Contains(e.Done, r) {
			out = append(out, r)
		}
	}
	return out
}

// clone returns a deep copy, so a store or a caller never shares slices.
func (e Entry) clone() Entry {
	e.Envelope.RcptTo = slices.Clone(e.Envelope.RcptTo)
	e.Done = slices.Clone(e.Done)
	return e
}

// Store keeps queued messages durably. The local spool (Open) is the
// embedded default; other backends (NATS JetStream) implement the same
// interface and pass the same conformance suite, queue/queuetest.
//
// Every method that changes the store returns only when the change is
// durable: after a nil error the change survives a crash of the process or
// of the machine. After an error the change may or may not have happened
// (at-least-once: a Put that failed may reappear after a restart, never
// the other way round). Implementations are safe for concurrent use; the
// queue never changes one entry from two goroutines at once.
type Store interface {
	// Put stores a new entry and its body. e.ID is unique; e.Size is
	// len(body).
	Put(ctx context.Context, e Entry, body []byte) error
	// Update replaces the metadata of an existing entry (ErrNotFound
	// otherwise). The body never changes.
	Update(ctx context.Context, e Entry) error
	// Remove deletes an entry and its body (ErrNotFound if absent).
	Remove(ctx context.Context, id ID) error
	// Body opens the body of an entry. A body that fails its checksum
	// makes the reader return an error matching ErrCorrupt.
	Body(ctx context.Context, id ID) (Body, error)
	// Entries returns every entry in the store, oldest first.
	Entries(ctx context.Context) ([]Entry, error)
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// WrittenUpdater is implemented by stores that can record an update
// before it is durable against a machine crash: UpdateWritten is Update,
// except that when it returns nil the change survives the death of the
// process (it is in the kernel) and becomes durable against a crash of
// the machine shortly after, not before. The Attempter records delivery
// bookkeeping with it (the in-flight mark before an attempt, a deferral
// after one): those records exist so that a message that kills the
// process is counted, and a process death cannot lose them; a machine
// crash can lose the last of them, which costs an early retry and an
// attempt counted once too few or too many, never a message. Puts,
// removals and holds stay Update and Put: durable before they return.
// The local spool implements it; a store that does not gets Update.
type WrittenUpdater interface {
	UpdateWritten(ctx context.Context, e Entry) error
}

// Body is a stored message body.
type Body interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
	Close() error
}

// SpaceReporter is implemented by stores on a local file system so the
// queue can refuse mail before the disk is full.
type SpaceReporter interface {
	// FreeBytes returns the bytes available to the store.
	FreeBytes() (uint64, error)
}

// sortEntries orders entries oldest first, then by ID.
func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
}
