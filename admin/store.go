package admin

import (
	"context"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

// Quarantine is what the admin handler needs of a quarantine. The
// quarantine package's *Manager satisfies it; so can a wrapper that
// adds auditing, or a quarantine on another machine.
type Quarantine interface {
	List(ctx context.Context, q quarantine.Query) (quarantine.Page, error)
	Get(ctx context.Context, id quarantine.ID) (quarantine.Held, []byte, error)
	Release(ctx context.Context, id quarantine.ID) (queue.ID, error)
	Delete(ctx context.Context, id quarantine.ID) error
	Rescan(ctx context.Context, p *filter.Pipeline, opts quarantine.RescanOptions) (quarantine.RescanReport, error)
}

// Short names for the quarantine's types inside the package.
type (
	held          = quarantine.Held
	heldID        = quarantine.ID
	query         = quarantine.Query
	page          = quarantine.Page
	rescanOptions = quarantine.RescanOptions
	rescanReport  = quarantine.RescanReport
)

var (
	errNotFound = quarantine.ErrNotFound
	errInUse    = quarantine.ErrInUse
	errCorrupt  = quarantine.ErrCorrupt
)
