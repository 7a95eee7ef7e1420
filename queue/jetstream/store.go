package jetstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

// maxChunk bounds one body chunk: below NATS's default 1 MiB payload
// limit with room for headers.
const maxChunk = 768 << 10

// Config configures a Store and the streams and buckets behind it.
type Config struct {
	// Name prefixes every stream and bucket ([A-Za-z0-9_-]); processes
	// that share a queue use the same Name. "" means "portcullis".
	Name string
	// Replicas is the JetStream replica count of every stream: 1 for a
	// single server, 3 in a cluster that must survive losing a node. 0
	// means 1.
	Replicas int
	// MaxMessageBytes bounds one body; 0 means 64 MiB.
	MaxMessageBytes int64
	// ChunkBytes is the size of one body chunk; 0 means 256 KiB, at most
	// 768 KiB (the server's max_payload must exceed it).
	ChunkBytes int
	// Timeout bounds each request whose context has no deadline; 0 means
	// 10 s.
	Timeout time.Duration
	// NATSOptions are passed to nats.Connect (credentials, TLS, ...).
	NATSOptions []nats.Option

	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil is a no-op
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = "portcullis"
	}
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("jetstream: invalid name %q", c.Name)
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 20
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 256 << 10
	}
	if c.ChunkBytes > maxChunk {
		return c, fmt.Errorf("jetstream: chunk size %d over %d", c.ChunkBytes, maxChunk)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Metrics = filter.OrNop(c.Metrics)
	return c, nil
}

// conn is a NATS connection with JetStream and the request timeout.
type conn struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	mu     sync.Mutex
	closed bool
}

func dial(ctx context.Context, url string, cfg Config) (*conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{nats.Name("portcullis"), nats.MaxReconnects(-1)}, cfg.NATSOptions...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := ctx.Err(); err != nil {
		nc.Close()
		return nil, err
	}
	return &conn{cfg: cfg, nc: nc, js: js}, nil
}

// op checks that the connection is open and bounds ctx by the timeout.
func (c *conn) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, queue.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	return ctx, cancel, nil
}

func (c *conn) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.nc.Close()
	return nil
}

// wrap turns a JetStream error into the queue's vocabulary, keeping a
// closed connection recognisable as queue.ErrClosed.
func (c *conn) wrap(what string, err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("jetstream: %s: %w (%w)", what, queue.ErrClosed, err)
	}
	return fmt.Errorf("jetstream: %s: %w", what, err)
}

// Store is a queue.Store on NATS JetStream: entries in a key-value
// bucket, bodies in chunks on a stream. It is safe for concurrent use and
// for use by several processes at once. See the package comment for what
// an acknowledgment means.
type Store struct {
	*conn
	entries jetstream.KeyValue
	corrupt jetstream.KeyValue
	bodies  jetstream.Stream
	subj    string // body chunk subject prefix, "<name>.body."
}

var _ queue.Store = (*Store)(nil)

// Open connects to the NATS servers at url (comma-separated for a
// cluster) and opens, creating if needed, the queue called cfg.Name.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	c, err := dial(ctx, url, cfg)
	if err != nil {
		return nil, err
	}
	s, err := openStore(ctx, c)
	if err != nil {
		c.close()
		return nil, err
	}
	return s, nil
}

func openStore(ctx context.Context, c *conn) (*Store, error) {
	ctx, cancel, err := c.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	s := &Store{conn: c, subj: c.cfg.Name + ".body."}
	n, r := c.cfg.Name, c.cfg.Replicas
	if s.entries, err = c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: n + "_entries", History: 1, Storage: jetstream.FileStorage, Replicas: r,
	}); err != nil {
		return nil, c.wrap("entries bucket", err)
	}
	if s.corrupt, err = c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: n + "_corrupt", History: 1, Storage: jetstream.FileStorage, Replicas: r,
	}); err != nil {
		return nil, c.wrap("corrupt bucket", err)
	}
	if s.bodies, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: n + "_BODIES", Subjects: []string{s.subj + ">"}, Storage: jetstream.FileStorage, Replicas: r,
		AllowDirect: true, MaxMsgSize: int32(c.cfg.ChunkBytes) + 4096,
	}); err != nil {
		return nil, c.wrap("bodies stream", err)
	}
	// Removed entries leave delete markers; drop the old ones so the
	// bucket does not grow with every message ever queued.
	if err := s.entries.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(time.Hour)); err != nil {
		c.cfg.Logger.Warn("jetstream: purging delete markers failed", "err", err)
	}
	return s, nil
}

func (s *Store) chunkSubject(id queue.ID, i int) string {
	return s.subj + string(id) + "." + strconv.Itoa(i)
}

// Put implements queue.Store: the chunks of the body first, then the
// entry, so that an entry is never found without its body.
func (s *Store) Put(ctx context.Context, e queue.Entry, body []byte) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if !validID(string(e.ID)) {
		return fmt.Errorf("jetstream: invalid id %q", e.ID)
	}
	if int64(len(body)) > s.cfg.MaxMessageBytes {
		return &filter.LimitError{Limit: filter.LimitMessageBytes, Max: s.cfg.MaxMessageBytes}
	}
	start := time.Now()
	bi, err := putBody(ctx, s.conn, s.chunkSubject, e.ID, body)
	if err != nil {
		return err
	}
	e.Size = int64(len(body))
	if _, err := s.entries.Create(ctx, string(e.ID), encodeEntry(e, bi)); err != nil {
		return s.wrap("put entry "+string(e.ID), err)
	}
	s.cfg.Metrics.Observe("portcullis_jetstream_put_seconds", time.Since(start).Seconds())
	return nil
}

// putBody publishes a body in chunks and waits for every acknowledgment.
func putBody(ctx context.Context, c *conn, subject func(queue.ID, int) string, id queue.ID, body []byte) (bodyInfo, error) {
	sum := sha256.Sum256(body)
	bi := bodyInfo{chunkSize: c.cfg.ChunkBytes, sum: hex.EncodeToString(sum[:])}
	for off := 0; off < len(body); off += bi.chunkSize {
		chunk := body[off:min(off+bi.chunkSize, len(body))]
		if _, err := c.js.Publish(ctx, subject(id, bi.chunks), chunk); err != nil {
			return bi, c.wrap("put body "+string(id), err)
		}
		bi.chunks++
	}
	return bi, nil
}

// getBody reads a body's chunks and checks its size and checksum.
func getBody(ctx context.Context, c *conn, st jetstream.Stream, subject func(queue.ID, int) string, id queue.ID, size int64, bi bodyInfo) ([]byte, error) {
	out := make([]byte, 0, size)
	for i := range bi.chunks {
		m, err := st.GetLastMsgForSubject(ctx, subject(id, i))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("%w: %s: chunk %d of %d missing", queue.ErrCorrupt, id, i, bi.chunks)
		}
		if err != nil {
			return nil, c.wrap("body "+string(id), err)
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
	return out, nil
}

// get reads and decodes one entry.
func (s *Store) get(ctx context.Context, id queue.ID) (queue.Entry, bodyInfo, uint64, error) {
	if !validID(string(id)) {
		return queue.Entry{}, bodyInfo{}, 0, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	kve, err := s.entries.Get(ctx, string(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return queue.Entry{}, bodyInfo{}, 0, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	if err != nil {
		return queue.Entry{}, bodyInfo{}, 0, s.wrap("get "+string(id), err)
	}
	e, bi, err := decodeEntry(kve.Value(), s.cfg.MaxMessageBytes)
	if err == nil && e.ID != id {
		err = fmt.Errorf("%w: entry %s stored under %s", queue.ErrCorrupt, e.ID, id)
	}
	if err != nil {
		s.moveAside(ctx, string(id), kve.Value(), err)
		return queue.Entry{}, bodyInfo{}, 0, err
	}
	return e, bi, kve.Revision(), nil
}

// Update implements queue.Store. A concurrent update of the same entry by
// another process fails rather than being overwritten silently.
func (s *Store) Update(ctx context.Context, e queue.Entry) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	old, bi, rev, err := s.get(ctx, e.ID)
	if err != nil {
		return err
	}
	e.Size = old.Size
	if _, err := s.entries.Update(ctx, string(e.ID), encodeEntry(e, bi), rev); err != nil {
		return s.wrap("update "+string(e.ID), err)
	}
	return nil
}

// Remove implements queue.Store: the entry first, then its body, so a
// crash between the two leaves an unreachable body, never an entry
// without one.
func (s *Store) Remove(ctx context.Context, id queue.ID) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if _, _, _, err := s.get(ctx, id); err != nil {
		return err
	}
	if err := s.entries.Purge(ctx, string(id)); err != nil {
		return s.wrap("remove "+string(id), err)
	}
	if err := s.bodies.Purge(ctx, jetstream.WithPurgeSubject(s.subj+string(id)+".>")); err != nil {
		// The entry is gone: the body is garbage, not mail. Log it.
		s.cfg.Logger.Warn("jetstream: purging a removed body failed", "id", id, "err", err)
	}
	return nil
}

// Body implements queue.Store. The whole body is read and checked against
// its SHA-256 first; one that fails is moved aside (its entry goes to the
// corrupt bucket, its chunks stay) and the error matches queue.ErrCorrupt.
func (s *Store) Body(ctx context.Context, id queue.ID) (queue.Body, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	e, bi, _, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := getBody(ctx, s.conn, s.bodies, s.chunkSubject, id, e.Size, bi)
	if errors.Is(err, queue.ErrCorrupt) {
		s.moveAside(ctx, string(id), encodeEntry(e, bi), err)
	}
	if err != nil {
		return nil, err
	}
	return memBody{bytes.NewReader(b)}, nil
}

// Entries implements queue.Store. It reads the bucket with one watcher;
// records that do not decode are moved aside.
func (s *Store) Entries(ctx context.Context) ([]queue.Entry, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var out []queue.Entry
	err = watchAll(ctx, s.conn, s.entries, func(key string, v []byte) {
		e, _, err := decodeEntry(v, s.cfg.MaxMessageBytes)
		if err == nil && string(e.ID) != key {
			err = fmt.Errorf("%w: entry %s stored under %s", queue.ErrCorrupt, e.ID, key)
		}
		if err != nil {
			s.moveAside(ctx, key, v, err)
			return
		}
		out = append(out, e)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b queue.Entry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmpString(string(a.ID), string(b.ID))
	})
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// watchAll calls fn for the current value of every key of a bucket.
func watchAll(ctx context.Context, c *conn, kv jetstream.KeyValue, fn func(key string, v []byte)) error {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return c.wrap("list", err)
	}
	defer w.Stop()
	for {
		select {
		case kve, ok := <-w.Updates():
			if !ok {
				return c.wrap("list", errors.New("watcher stopped"))
			}
			if kve == nil {
				return nil // the initial values are all delivered
			}
			fn(kve.Key(), kve.Value())
		case <-ctx.Done():
			return c.wrap("list", ctx.Err())
		}
	}
}

func (s *Store) moveAside(ctx context.Context, key string, raw []byte, why error) {
	moveAside(ctx, s.conn, s.entries, s.corrupt, key, raw, why, "portcullis_queue_corrupt_total")
}

// moveAside copies a damaged record to the corrupt bucket and then takes
// it out of its bucket: never deleted, never blocking the others.
func moveAside(ctx context.Context, c *conn, from, to jetstream.KeyValue, key string, raw []byte, why error, metric string) {
	c.cfg.Logger.Error("jetstream: corrupt record moved aside", "key", key, "from", from.Bucket(), "to", to.Bucket(), "err", why)
	c.cfg.Metrics.Add(metric, 1)
	if _, err := to.Put(ctx, key, raw); err != nil {
		c.cfg.Logger.Error("jetstream: moving a corrupt record aside failed; left in place", "key", key, "err", err)
		return
	}
	if err := from.Purge(ctx, key); err != nil {
		c.cfg.Logger.Error("jetstream: removing a corrupt record failed", "key", key, "err", err)
	}
}

// Close implements queue.Store.
func (s *Store) Close() error { return s.close() }

// memBody is a body read into memory.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }
