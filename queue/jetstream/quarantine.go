package jetstream

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

// A quarantine record is stored as "PJQ1", the chunk size of its message
// in 8 hex digits, and the quarantine.Held record (which carries its
// own checksum and the message's SHA-256).
const heldMagic = "PJQ1"

func encodeHeld(h quarantine.Held, chunkSize int) ([]byte, error) {
	rec, err := h.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := fmt.Appendf([]byte(heldMagic), "%08x", chunkSize)
	return append(out, rec...), nil
}

// decodeHeld decodes a stored quarantine record; errors match
// quarantine.ErrCorrupt.
func decodeHeld(b []byte, maxBody int64) (quarantine.Held, bodyInfo, error) {
	if len(b) < len(heldMagic)+8 || string(b[:len(heldMagic)]) != heldMagic {
		return quarantine.Held{}, bodyInfo{}, fmt.Errorf("%w: no %s header", errRecord, heldMagic)
	}
	cs, err := strconv.ParseUint(string(b[len(heldMagic):len(heldMagic)+8]), 16, 32)
	if err != nil {
		return quarantine.Held{}, bodyInfo{}, fmt.Errorf("%w: chunk size: %v", errRecord, err)
	}
	var h quarantine.Held
	if err := h.UnmarshalBinary(b[len(heldMagic)+8:]); err != nil {
		return quarantine.Held{}, bodyInfo{}, err
	}
	bi := bodyInfo{chunkSize: int(cs), sum: h.Checksum}
	if cs > 0 {
		bi.chunks = int((h.Size + int64(cs) - 1) / int64(cs))
	}
	if err := checkBody(h.Size, bi.chunkSize, bi.chunks, bi.sum, maxBody); err != nil {
		return quarantine.Held{}, bodyInfo{}, fmt.Errorf("%w: %v", errRecord, err)
	}
	return h, bi, nil
}

// QuarantineStore is a quarantine.Store on JetStream: records in a
// key-value bucket, messages in chunks on a stream, so that every gateway
// of a cluster sees one quarantine. Operations in progress are tracked per
// process (quarantine.Manager), so run bulk operations (Rescan, Expire) from
// one process at a time.
type QuarantineStore struct {
	*records[quarantine.Held]
}

var _ quarantine.Store = (*QuarantineStore)(nil)

// OpenQuarantine connects to the NATS servers at url and opens, creating
// if needed, the quarantine of the queue called cfg.Name.
func OpenQuarantine(ctx context.Context, url string, cfg Config) (*QuarantineStore, error) {
	r, err := openRecords(ctx, url, cfg, func(n string) layout {
		return layout{n + "_quarantine", n + "_quarantine_corrupt", n + "_QBODIES", n + ".qbody.", "portcullis_quarantine_corrupt_total"}
	}, func(b []byte, max int64) (quarantine.Held, queue.ID, bodyInfo, error) {
		h, bi, err := decodeHeld(b, max)
		return h, queue.ID(h.ID), bi, err
	})
	if err != nil {
		return nil, err
	}
	return &QuarantineStore{r}, nil
}

// Put implements quarantine.Store.
func (s *QuarantineStore) Put(ctx context.Context, h quarantine.Held, raw []byte) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if int64(len(raw)) > s.cfg.MaxMessageBytes || int64(len(raw)) != h.Size {
		return fmt.Errorf("jetstream: quarantine: message of %d bytes (record says %d, limit %d)", len(raw), h.Size, s.cfg.MaxMessageBytes)
	}
	return s.put(ctx, queue.ID(h.ID), raw, func(bi bodyInfo) ([]byte, error) {
		if bi.sum != h.Checksum {
			return nil, fmt.Errorf("jetstream: quarantine: %s: checksum does not match the message", h.ID)
		}
		return encodeHeld(h, bi.chunkSize)
	})
}

// Update implements quarantine.Store.
func (s *QuarantineStore) Update(ctx context.Context, h quarantine.Held) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	old, bi, rev, err := s.get(ctx, queue.ID(h.ID))
	if err != nil {
		return err
	}
	if h.Size != old.Size || h.Checksum != old.Checksum {
		return fmt.Errorf("jetstream: quarantine: update of %s changes its message", h.ID)
	}
	rec, err := encodeHeld(h, bi.chunkSize)
	if err != nil {
		return err
	}
	return s.update(ctx, queue.ID(h.ID), rec, rev)
}

// Remove implements quarantine.Store.
func (s *QuarantineStore) Remove(ctx context.Context, id quarantine.ID) error {
	return s.records.Remove(ctx, queue.ID(id))
}

// Body implements quarantine.Store; the message is checked against its
// SHA-256 (quarantine.ErrCorrupt when it fails).
func (s *QuarantineStore) Body(ctx context.Context, id quarantine.ID) (queue.Body, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	h, bi, _, err := s.get(ctx, queue.ID(id))
	if err != nil {
		return nil, err
	}
	return s.body(ctx, queue.ID(id), h.Size, bi)
}

// All implements quarantine.Store.
func (s *QuarantineStore) All(ctx context.Context) ([]quarantine.Held, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	out, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b quarantine.Held) int { return cmpString(string(a.ID), string(b.ID)) })
	return out, nil
}
