package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
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
	*records[queue.Entry]
}

var _ queue.Store = (*Store)(nil)

// Open connects to the NATS servers at url (comma-separated for a
// cluster) and opens, creating if needed, the queue called cfg.Name.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	r, err := openRecords(ctx, url, cfg, func(n string) layout {
		return layout{n + "_entries", n + "_corrupt", n + "_BODIES", n + ".body.", "portcullis_queue_corrupt_total"}
	}, func(b []byte, max int64) (queue.Entry, queue.ID, bodyInfo, error) {
		e, bi, err := decodeEntry(b, max)
		return e, e.ID, bi, err
	})
	if err != nil {
		return nil, err
	}
	return &Store{r}, nil
}

// Put implements queue.Store.
func (s *Store) Put(ctx context.Context, e queue.Entry, body []byte) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if int64(len(body)) > s.cfg.MaxMessageBytes {
		return &filter.LimitError{Limit: filter.LimitMessageBytes, Max: s.cfg.MaxMessageBytes}
	}
	start := time.Now()
	e.Size = int64(len(body))
	if err := s.put(ctx, e.ID, body, func(bi bodyInfo) ([]byte, error) { return encodeEntry(e, bi), nil }); err != nil {
		return err
	}
	s.cfg.Metrics.Observe("portcullis_jetstream_put_seconds", time.Since(start).Seconds())
	return nil
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
	return s.update(ctx, e.ID, encodeEntry(e, bi), rev)
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
	b, err := s.body(ctx, id, e.Size, bi)
	if errors.Is(err, queue.ErrCorrupt) {
		s.moveAside(ctx, string(id), encodeEntry(e, bi), err)
	}
	return b, err
}

// Entries implements queue.Store.
func (s *Store) Entries(ctx context.Context) ([]queue.Entry, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	out, err := s.all(ctx)
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
