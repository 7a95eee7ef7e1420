package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
)

// ArchiveLeaves adapts the archive inspector to a LeafWalker, so that
// engines scan every file it unpacks and findings name where they are.
// The inspector's limit errors (a walk stopped early, a member larger than
// it unpacks) become ErrSizeLimit: the scan was partial, and says so.
//
// It is a Coverer: the Filter streams the leaves, then the message without
// the attachment bodies they came from, so each byte reaches an engine
// once.
func ArchiveLeaves(in *archive.Inspector) LeafWalker { return archiveLeaves{in} }

type archiveLeaves struct{ in *archive.Inspector }

var _ Coverer = archiveLeaves{}

func (a archiveLeaves) Leaves(ctx context.Context, m *filter.Message, fn func(Leaf, io.Reader) error) error {
	err := a.in.Leaves(ctx, m, func(l archive.Leaf, r io.Reader) error {
		return fn(Leaf(l), limitReader{r})
	})
	return asSizeLimit(err)
}

func (archiveLeaves) Covered(m *filter.Message) []Span { return covered(m) }

func asSizeLimit(err error) error {
	if err != nil && errors.Is(err, archive.ErrLimit) && !errors.Is(err, ErrSizeLimit) {
		return fmt.Errorf("%w: %w", ErrSizeLimit, err)
	}
	return err
}

// limitReader marks the inspector's limit errors as ErrSizeLimit.
type limitReader struct{ r io.Reader }

func (l limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	return n, asSizeLimit(err)
}
