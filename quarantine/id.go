package quarantine

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/portcullis-mail/portcullis/queue"
)

// ID names one held message. IDs sort by hold time. It is not a queue ID:
// a release returns the queue.ID the message got in the queue.
type ID string

// newID returns a fresh ID: 16 hex digits of Unix nanoseconds and 16 of
// randomness, so that IDs sort by age and never collide across processes
// that share a store.
func newID(now time.Time) ID {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand never fails on Linux (Go 1.24+ panics instead)
	return ID(strconv.FormatInt(now.UnixNano(), 16) + hex.EncodeToString(r[:]))
}

// Valid reports whether id can name a held message: 1 to 64 bytes of
// [0-9A-Za-z._-]. Stores refuse other IDs (they would escape a directory
// or a subject).
func (id ID) Valid() bool {
	s := string(id)
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

// The store errors are the queue's, so that one backend serving both (the
// JetStream one) reports one error for one condition.
var (
	// ErrNotFound is matched by an ID the store does not hold.
	ErrNotFound = queue.ErrNotFound
	// ErrCorrupt is matched by a record that does not decode or a message
	// that fails its checksum; it is kept (moved aside), never released.
	ErrCorrupt = queue.ErrCorrupt
	// ErrClosed is returned by a closed store.
	ErrClosed = queue.ErrClosed
	// ErrNoRecipients is returned by Hold for an envelope without
	// recipients.
	ErrNoRecipients = queue.ErrNoRecipients
	// ErrInUse is returned when a held message is under another operation
	// (a release, a delete, a re-scan) in this process.
	ErrInUse = errors.New("quarantine: message in use")
	// ErrNoQueue is returned by Release and Rescan when Config.Queue is
	// nil: there is nowhere to release to.
	ErrNoQueue = errors.New("quarantine: no queue to release to")
	// ErrNoStore is returned by New without Config.Store.
	ErrNoStore = errors.New("quarantine: no store")
)
