package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/queue"
)

// A quarantine record is stored as "PJQ1", the chunk size of its message
// in 8 hex digits, and the queue.Quarantined record (which carries its
// own checksum and the message's SHA-256).
const heldMagic = "PJQ1"

func encodeHeld(h queue.Quarantined, chunkSize int) ([]byte, error) {
	rec, err := h.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := fmt.Appendf([]byte(heldMagic), "%08x", chunkSize)
	return append(out, rec...), nil
}

// decodeHeld decodes a stored quarantine record; errors match
// queue.ErrCorrupt.
func decodeHeld(b []byte, maxBody int64) (queue.Quarantined, bodyInfo, error) {
	if len(b) < len(heldMagic)+8 || string(b[:len(heldMagic)]) != heldMagic {
		return queue.Quarantined{}, bodyInfo{}, fmt.Errorf("%w: no %s header", errRecord, heldMagic)
	}
	cs, err := strconv.ParseUint(string(b[len(heldMagic):len(heldMagic)+8]), 16, 32)
	if err != nil {
		return queue.Quarantined{}, bodyInfo{}, fmt.Errorf("%w: chunk size: %v", errRecord, err)
	}
	var h queue.Quarantined
	if err := h.UnmarshalBinary(b[len(heldMagic)+8:]); err != nil {
		return queue.Quarantined{}, bodyInfo{}, err
	}
	bi := bodyInfo{chunkSize: int(cs), sum: h.Checksum}
	if cs > 0 {
		bi.chunks = int((h.Size + int64(cs) - 1) / int64(cs))
	}
	if err := checkBody(h.Size, bi.chunkSize, bi.chunks, bi.sum, maxBody); err != nil {
		return queue.Quarantined{}, bodyInfo{}, fmt.Errorf("%w: %v", errRecord, err)
	}
	return h, bi, nil
}

// QuarantineStore is a queue.QuarantineStore on JetStream: records in a
// key-value bucket, messages in chunks on a stream, so that every gateway
// of a cluster sees one quarantine. Operations in progress are tracked per
// process (queue.Quarantine), so run bulk operations (Rescan, Expire) from
// one process at a time.
type QuarantineStore struct {
	*conn
	recs    jetstream.KeyValue
	corrupt jetstream.KeyValue
	bodies  jetstream.Stream
	subj    string // "<name>.qbody."
}

var _ queue.QuarantineStore = (*QuarantineStore)(nil)

// OpenQuarantine connects to the NATS servers at url and opens, creating
// if needed, the quarantine of the queue called cfg.Name.
func OpenQuarantine(ctx context.Context, url string, cfg Config) (*QuarantineStore, error) {
	c, err := dial(ctx, url, cfg)
	if err != nil {
		return nil, err
	}
	octx, cancel, err := c.op(ctx)
	if err != nil {
		c.close()
		return nil, err
	}
	defer cancel()
	s := &QuarantineStore{conn: c, subj: c.cfg.Name + ".qbody."}
	n, r := c.cfg.Name, c.cfg.Replicas
	if s.recs, err = c.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{
		Bucket: n + "_quarantine", History: 1, Storage: jetstream.FileStorage, Replicas: r,
	}); err == nil {
		s.corrupt, err = c.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{
			Bucket: n + "_quarantine_corrupt", History: 1, Storage: jetstream.FileStorage, Replicas: r,
		})
	}
	if err == nil {
		s.bodies, err = c.js.CreateOrUpdateStream(octx, jetstream.StreamConfig{
			Name: n + "_QBODIES", Subjects: []string{s.subj + ">"}, Storage: jetstream.FileStorage, Replicas: r,
			AllowDirect: true, MaxMsgSize: int32(c.cfg.ChunkBytes) + 4096,
		})
	}
	if err != nil {
		c.close()
		return nil, c.wrap("quarantine", err)
	}
	return s, nil
}

func (s *QuarantineStore) chunkSubject(id queue.ID, i int) string {
	return s.subj + string(id) + "." + strconv.Itoa(i)
}

// Put implements queue.QuarantineStore.
func (s *QuarantineStore) Put(ctx context.Context, h queue.Quarantined, raw []byte) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if !validID(string(h.ID)) {
		return fmt.Errorf("jetstream: invalid id %q", h.ID)
	}
	if int64(len(raw)) > s.cfg.MaxMessageBytes || int64(len(raw)) != h.Size {
		return fmt.Errorf("jetstream: quarantine: message of %d bytes (record says %d, limit %d)", len(raw), h.Size, s.cfg.MaxMessageBytes)
	}
	rec, err := encodeHeld(h, s.cfg.ChunkBytes)
	if err != nil {
		return err
	}
	bi, err := putBody(ctx, s.conn, s.chunkSubject, h.ID, raw)
	if err != nil {
		return err
	}
	if bi.sum != h.Checksum {
		return fmt.Errorf("jetstream: quarantine: %s: checksum does not match the message", h.ID)
	}
	if _, err := s.recs.Create(ctx, string(h.ID), rec); err != nil {
		return s.wrap("quarantine put "+string(h.ID), err)
	}
	return nil
}

func (s *QuarantineStore) get(ctx context.Context, id queue.ID) (queue.Quarantined, bodyInfo, uint64, error) {
	if !validID(string(id)) {
		return queue.Quarantined{}, bodyInfo{}, 0, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	kve, err := s.recs.Get(ctx, string(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return queue.Quarantined{}, bodyInfo{}, 0, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	if err != nil {
		return queue.Quarantined{}, bodyInfo{}, 0, s.wrap("quarantine get "+string(id), err)
	}
	h, bi, err := decodeHeld(kve.Value(), s.cfg.MaxMessageBytes)
	if err == nil && h.ID != id {
		err = fmt.Errorf("%w: record of %s stored under %s", queue.ErrCorrupt, h.ID, id)
	}
	if err != nil {
		s.moveAside(ctx, string(id), kve.Value(), err)
		return queue.Quarantined{}, bodyInfo{}, 0, err
	}
	return h, bi, kve.Revision(), nil
}

// Update implements queue.QuarantineStore.
func (s *QuarantineStore) Update(ctx context.Context, h queue.Quarantined) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	old, bi, rev, err := s.get(ctx, h.ID)
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
	if _, err := s.recs.Update(ctx, string(h.ID), rec, rev); err != nil {
		return s.wrap("quarantine update "+string(h.ID), err)
	}
	return nil
}

// Remove implements queue.QuarantineStore: the record, then the message.
func (s *QuarantineStore) Remove(ctx context.Context, id queue.ID) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if _, _, _, err := s.get(ctx, id); err != nil {
		return err
	}
	if err := s.recs.Purge(ctx, string(id)); err != nil {
		return s.wrap("quarantine remove "+string(id), err)
	}
	if err := s.bodies.Purge(ctx, jetstream.WithPurgeSubject(s.subj+string(id)+".>")); err != nil {
		s.cfg.Logger.Warn("jetstream: purging a removed quarantined message failed", "id", id, "err", err)
	}
	return nil
}

// Body implements queue.QuarantineStore; the message is checked against
// its SHA-256 (queue.ErrCorrupt when it fails).
func (s *QuarantineStore) Body(ctx context.Context, id queue.ID) (queue.Body, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	h, bi, _, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := getBody(ctx, s.conn, s.bodies, s.chunkSubject, id, h.Size, bi)
	if err != nil {
		return nil, err
	}
	return memBody{bytes.NewReader(b)}, nil
}

// All implements queue.QuarantineStore.
func (s *QuarantineStore) All(ctx context.Context) ([]queue.Quarantined, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var out []queue.Quarantined
	err = watchAll(ctx, s.conn, s.recs, func(key string, v []byte) {
		h, _, err := decodeHeld(v, s.cfg.MaxMessageBytes)
		if err == nil && string(h.ID) != key {
			err = fmt.Errorf("%w: record of %s stored under %s", queue.ErrCorrupt, h.ID, key)
		}
		if err != nil {
			s.moveAside(ctx, key, v, err)
			return
		}
		out = append(out, h)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b queue.Quarantined) int { return cmpString(string(a.ID), string(b.ID)) })
	return out, nil
}

func (s *QuarantineStore) moveAside(ctx context.Context, key string, raw []byte, why error) {
	moveAside(ctx, s.conn, s.recs, s.corrupt, key, raw, why, "portcullis_quarantine_corrupt_total")
}

// Close implements queue.QuarantineStore.
func (s *QuarantineStore) Close() error { return s.close() }
