package jetstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/queue"
)

// records keeps records of type R in a key-value bucket (key = ID) and a
// body per record in chunks on a stream: the layout the Store and the
// QuarantineStore share. Records that fail to decode are moved to a
// corrupt bucket.
type records[R any] struct {
	*conn
	recs, corrupt jetstream.KeyValue
	bodies        jetstream.Stream
	subj          string // chunk subjects: subj + ID + "." + N
	metric        string // counts corrupt records
	decode        func(b []byte, maxBody int64) (R, queue.ID, bodyInfo, error)
}

// layout names a records' buckets, stream and subjects under cfg.Name.
type layout struct {
	bucket, corrupt, stream, subj, metric string
}

// openRecords connects to url and creates or opens the buckets and the
// stream of a layout.
func openRecords[R any](ctx context.Context, url string, cfg Config, l func(name string) layout,
	decode func([]byte, int64) (R, queue.ID, bodyInfo, error)) (*records[R], error) {
	c, err := dial(ctx, url, cfg)
	if err != nil {
		return nil, err
	}
	r, err := createRecords(ctx, c, l(c.cfg.Name), decode)
	if err != nil {
		c.close()
		return nil, err
	}
	return r, nil
}

func createRecords[R any](ctx context.Context, c *conn, l layout, decode func([]byte, int64) (R, queue.ID, bodyInfo, error)) (*records[R], error) {
	ctx, cancel, err := c.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	r := &records[R]{conn: c, subj: l.subj, metric: l.metric, decode: decode}
	kv := func(name string) (jetstream.KeyValue, error) {
		return c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, History: 1, Storage: jetstream.FileStorage, Replicas: c.cfg.Replicas,
		})
	}
	if r.recs, err = kv(l.bucket); err == nil {
		r.corrupt, err = kv(l.corrupt)
	}
	if err == nil {
		r.bodies, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: l.stream, Subjects: []string{l.subj + ">"}, Storage: jetstream.FileStorage, Replicas: c.cfg.Replicas,
			AllowDirect: true, MaxMsgSize: int32(c.cfg.ChunkBytes) + 4096,
		})
	}
	if err != nil {
		return nil, c.wrap("opening "+l.bucket, err)
	}
	// Removed records leave delete markers; drop the old ones so the
	// bucket does not grow with every message ever stored.
	if err := r.recs.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(time.Hour)); err != nil {
		c.cfg.Logger.Warn("jetstream: purging delete markers failed", "bucket", l.bucket, "err", err)
	}
	return r, nil
}

func (r *records[R]) chunkSubject(id queue.ID, i int) string {
	return r.subj + string(id) + "." + strconv.Itoa(i)
}

// put publishes a body in chunks, waiting for every acknowledgment, and
// then creates the record that encode makes: a record is never found
// without its body.
func (r *records[R]) put(ctx context.Context, id queue.ID, body []byte, encode func(bodyInfo) ([]byte, error)) error {
	if !validID(string(id)) {
		return fmt.Errorf("jetstream: invalid id %q", id)
	}
	sum := sha256.Sum256(body)
	bi := bodyInfo{chunkSize: r.cfg.ChunkBytes, sum: hex.EncodeToString(sum[:])}
	for off := 0; off < len(body); off += bi.chunkSize {
		chunk := body[off:min(off+bi.chunkSize, len(body))]
		if _, err := r.js.Publish(ctx, r.chunkSubject(id, bi.chunks), chunk); err != nil {
			return r.wrap("put body "+string(id), err)
		}
		bi.chunks++
	}
	rec, err := encode(bi)
	if err != nil {
		return err
	}
	if _, err := r.recs.Create(ctx, string(id), rec); err != nil {
		return r.wrap("put "+string(id), err)
	}
	return nil
}

// get reads and decodes one record; one that does not decode is moved
// aside and matches queue.ErrCorrupt.
func (r *records[R]) get(ctx context.Context, id queue.ID) (R, bodyInfo, uint64, error) {
	var zero R
	if !validID(string(id)) {
		return zero, bodyInfo{}, 0, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	kve, err := r.recs.Get(ctx, string(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return zero, bodyInfo{}, 0, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	if err != nil {
		return zero, bodyInfo{}, 0, r.wrap("get "+string(id), err)
	}
	rec, bi, err := r.decodeKey(string(id), kve.Value())
	if err != nil {
		r.moveAside(ctx, string(id), kve.Value(), err)
		return zero, bodyInfo{}, 0, err
	}
	return rec, bi, kve.Revision(), nil
}

func (r *records[R]) decodeKey(key string, v []byte) (R, bodyInfo, error) {
	rec, id, bi, err := r.decode(v, r.cfg.MaxMessageBytes)
	if err == nil && string(id) != key {
		err = fmt.Errorf("%w: record of %s stored under %s", queue.ErrCorrupt, id, key)
	}
	return rec, bi, err
}

// update replaces a record if it is still at revision rev: a concurrent
// change by another process fails rather than being overwritten.
func (r *records[R]) update(ctx context.Context, id queue.ID, rec []byte, rev uint64) error {
	if _, err := r.recs.Update(ctx, string(id), rec, rev); err != nil {
		return r.wrap("update "+string(id), err)
	}
	return nil
}

// Remove implements queue.Store and quarantine.Store: it deletes a
// record, then its body, so a crash between the two leaves an unreachable
// body, never a record without one.
func (r *records[R]) Remove(ctx context.Context, id queue.ID) error {
	ctx, cancel, err := r.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if _, _, _, err := r.get(ctx, id); err != nil {
		return err
	}
	if err := r.recs.Purge(ctx, string(id)); err != nil {
		return r.wrap("remove "+string(id), err)
	}
	if err := r.bodies.Purge(ctx, jetstream.WithPurgeSubject(r.subj+string(id)+".>")); err != nil {
		// The record is gone: the body is garbage, not mail. Log it.
		r.cfg.Logger.Warn("jetstream: purging a removed body failed", "id", id, "err", err)
	}
	return nil
}

// body reads a body's chunks and checks its size and SHA-256.
func (r *records[R]) body(ctx context.Context, id queue.ID, size int64, bi bodyInfo) (queue.Body, error) {
	out := make([]byte, 0, size)
	for i := range bi.chunks {
		m, err := r.bodies.GetLastMsgForSubject(ctx, r.chunkSubject(id, i))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("%w: %s: chunk %d of %d missing", queue.ErrCorrupt, id, i, bi.chunks)
		}
		if err != nil {
			return nil, r.wrap("body "+string(id), err)
		}
		if int64(len(out)+len(m.Data)) > size {
			return nil, fmt.Errorf("%w: %s: body longer than %d bytes", queue.ErrCorrupt, id, size)
		}
		out = append(out, m.Data...)
	}
	sum := sha256.Sum256(out)
	if int64(len(out)) != size || hex.EncodeToString(sum[:]) != bi.sum {
		return nil, fmt.Errorf("%w: %s: body fails its checksum", queue.ErrCorrupt, id)
	}
	return memBody{bytes.NewReader(out)}, nil
}

// all returns every record, read with one watcher; records that do not
// decode are moved aside.
func (r *records[R]) all(ctx context.Context) ([]R, error) {
	w, err := r.recs.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, r.wrap("list", err)
	}
	defer w.Stop()
	var out []R
	for {
		select {
		case kve, ok := <-w.Updates():
			if !ok {
				return nil, r.wrap("list", errors.New("watcher stopped"))
			}
			if kve == nil {
				return out, nil // the initial values are all delivered
			}
			rec, _, err := r.decodeKey(kve.Key(), kve.Value())
			if err != nil {
				r.moveAside(ctx, kve.Key(), kve.Value(), err)
				continue
			}
			out = append(out, rec)
		case <-ctx.Done():
			return nil, r.wrap("list", ctx.Err())
		}
	}
}

// moveAside copies a damaged record to the corrupt bucket and then takes
// it out of its bucket: never deleted, never blocking the others.
func (r *records[R]) moveAside(ctx context.Context, key string, raw []byte, why error) {
	r.cfg.Logger.Error("jetstream: corrupt record moved aside", "key", key, "from", r.recs.Bucket(), "to", r.corrupt.Bucket(), "err", why)
	r.cfg.Metrics.Add(r.metric, 1)
	if _, err := r.corrupt.Put(ctx, key, raw); err != nil {
		r.cfg.Logger.Error("jetstream: moving a corrupt record aside failed; left in place", "key", key, "err", err)
		return
	}
	if err := r.recs.Purge(ctx, key); err != nil {
		r.cfg.Logger.Error("jetstream: removing a corrupt record failed", "key", key, "err", err)
	}
}

// Close implements queue.Store and quarantine.Store; requests in
// flight fail with an error matching queue.ErrClosed.
func (r *records[R]) Close() error { return r.close() }

// memBody is a body read into memory.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
