package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/scanner"
)

// Defaults and limits of the shared AV result cache.
const (
	AVCacheBucket = "portcullis-av-cache"
	// DefaultAVCacheTTL is how long an entry lives (the bucket's max age).
	DefaultAVCacheTTL = time.Hour
	// DefaultAVCacheBytes bounds the bucket; the oldest entries go first.
	DefaultAVCacheBytes = 64 << 20
	// MaxAVValueBytes bounds one entry's value; a result with more or
	// longer signature names is not shared (ErrValueTooLarge).
	MaxAVValueBytes = 4 << 10
	// MaxAVSignatures bounds the signatures of one entry.
	MaxAVSignatures = 32
)

// Errors of the AV cache and guard.
var (
	// ErrValueTooLarge: a result or a count is larger than a KV value of
	// this package may be; it is not shared.
	ErrValueTooLarge = errors.New("fleet: value too large")
	// ErrValue: a KV value does not decode, or does not belong to its key.
	ErrValue = errors.New("fleet: malformed value")
)

// AVCacheConfig configures an AVCache.
type AVCacheConfig struct {
	JetStream jetstream.JetStream
	Bucket    Bucket        // default AVCacheBucket
	TTL       time.Duration // default DefaultAVCacheTTL
	MaxBytes  int64         // default DefaultAVCacheBytes
}

// AVCache is a scanner.SharedCache on a JetStream KV bucket: one key per
// engine, signature version and content hash (the version's hash is the
// key's first token, so a version's entries are one subject prefix), a
// small JSON value, history 1. Entries expire after TTL, and the oldest
// go first when the bucket is full; an old version's entries are never
// asked for once the engine reports a new one (the key names the
// version), and expire with their age.
//
// The bucket is bound on first use and again after a failure, so an
// AVCache made while NATS is down starts working when it is back; until
// then every call fails and the scanner scans locally (see
// scanner.SharedCache).
type AVCache struct {
	cfg AVCacheConfig

	mu sync.Mutex
	kv jetstream.KeyValue
}

var _ scanner.SharedCache = (*AVCache)(nil)

// NewAVCache returns an AVCache; it does not talk to NATS yet.
func NewAVCache(cfg AVCacheConfig) (*AVCache, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("fleet: AV cache: no JetStream")
	}
	if cfg.Bucket.Name == "" {
		cfg.Bucket.Name = AVCacheBucket
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultAVCacheTTL
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultAVCacheBytes
	}
	return &AVCache{cfg: cfg}, nil
}

// bucket binds the KV bucket, creating it when missing: a KV-shaped
// stream (history 1) that discards its oldest entries when full, where
// a plain KV bucket would refuse new ones.
//
// No lock is held while NATS is asked: a bind stalled by an outage must
// not hold up other scans beyond their own timeouts (two binds at once
// are harmless).
func (c *AVCache) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	c.mu.Lock()
	kv := c.kv
	c.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	js, name := c.cfg.JetStream, c.cfg.Bucket.Name
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "KV_" + name, Subjects: []string{"$KV." + name + ".>"}, Description: "Portcullis shared AV results",
			MaxMsgsPerSubject: 1, MaxBytes: c.cfg.MaxBytes, MaxAge: c.cfg.TTL, MaxMsgSize: MaxAVValueBytes * 2,
			MaxMsgs: -1, MaxConsumers: -1, Storage: jetstream.MemoryStorage, Replicas: max(c.cfg.Bucket.Replicas, 1),
			Discard: jetstream.DiscardOld, AllowRollup: true, DenyDelete: true, AllowDirect: true,
			Duplicates: min(2*time.Minute, c.cfg.TTL),
		})
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: bucket %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kv == nil {
		c.kv = kv
	}
	return c.kv, nil
}

// Bind binds the bucket, creating it when missing, so the first scans
// need not: a gateway calls it in the background at start (creating an
// R3 stream can take longer than a scan's lookup timeout).
func (c *AVCache) Bind(ctx context.Context) error {
	_, err := c.bucket(ctx)
	return err
}

// forget drops the bound bucket after a failure, so the next call binds
// it again (it may have been deleted and made anew).
func (c *AVCache) forget(err error) {
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		c.mu.Lock()
		c.kv = nil
		c.mu.Unlock()
	}
}

// avKey is the KV key of k: the version's hash, then the content's.
func avKey(k scanner.CacheKey) string {
	return versionToken(k.Engine, k.Version) + "." + hex.EncodeToString(k.Sum[:])
}

// versionToken names an engine's signature version in keys: 16 hex digits
// of SHA-256 over both, whatever bytes they hold.
func versionToken(engine, version string) string {
	h := sha256.Sum256([]byte(engine + "\x00" + version))
	return hex.EncodeToString(h[:8])
}

// avValue is an entry: the key's engine and version (checked on read, so
// a value never answers for another key) and the signatures.
type avValue struct {
	Engine     string   `json:"e"`
	Version    string   `json:"v"`
	Signatures []string `json:"s,omitempty"`
}

func encodeAV(k scanner.CacheKey, r scanner.Result) ([]byte, error) {
	if len(r.Signatures) > MaxAVSignatures {
		return nil, fmt.Errorf("%w: %d signatures", ErrValueTooLarge, len(r.Signatures))
	}
	data, err := json.Marshal(avValue{Engine: k.Engine, Version: k.Version, Signatures: r.Signatures})
	if err != nil {
		return nil, err
	}
	if len(data) > MaxAVValueBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrValueTooLarge, len(data))
	}
	return data, nil
}

// decodeAV decodes an entry for k; a value for another engine or version
// (a hash collision, a foreign writer) or beyond the limits is ErrValue.
func decodeAV(k scanner.CacheKey, data []byte) (scanner.Result, error) {
	if len(data) > MaxAVValueBytes {
		return scanner.Result{}, fmt.Errorf("%w: %d bytes", ErrValue, len(data))
	}
	var v avValue
	if err := json.Unmarshal(data, &v); err != nil {
		return scanner.Result{}, fmt.Errorf("%w: %w", ErrValue, err)
	}
	if v.Engine != k.Engine || v.Version != k.Version {
		return scanner.Result{}, fmt.Errorf("%w: entry of %s %q under the key of %s %q", ErrValue, v.Engine, v.Version, k.Engine, k.Version)
	}
	if len(v.Signatures) > MaxAVSignatures {
		return scanner.Result{}, fmt.Errorf("%w: %d signatures", ErrValue, len(v.Signatures))
	}
	for _, s := range v.Signatures {
		if s == "" {
			return scanner.Result{}, fmt.Errorf("%w: an empty signature name", ErrValue)
		}
	}
	return scanner.Result{Signatures: v.Signatures}, nil
}

// Get implements scanner.SharedCache.
func (c *AVCache) Get(ctx context.Context, k scanner.CacheKey) (scanner.Result, bool, error) {
	kv, err := c.bucket(ctx)
	if err != nil {
		return scanner.Result{}, false, err
	}
	e, err := kv.Get(ctx, avKey(k))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return scanner.Result{}, false, nil
	}
	if err != nil {
		c.forget(err)
		return scanner.Result{}, false, fmt.Errorf("fleet: AV cache: %w", err)
	}
	r, err := decodeAV(k, e.Value())
	if err != nil {
		return scanner.Result{}, false, err
	}
	return r, true, nil
}

// Put implements scanner.SharedCache.
func (c *AVCache) Put(ctx context.Context, k scanner.CacheKey, r scanner.Result) error {
	data, err := encodeAV(k, r)
	if err != nil {
		return err
	}
	kv, err := c.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, avKey(k), data); err != nil {
		c.forget(err)
		return fmt.Errorf("fleet: AV cache: %w", err)
	}
	return nil
}

// Forget drops every entry of engine at version from the bucket, for
// every node: after its signatures changed in a way the version does not
// show (unofficial databases reloaded), before re-scanning.
func (c *AVCache) Forget(ctx context.Context, engine, version string) error {
	if _, err := c.bucket(ctx); err != nil {
		return err
	}
	s, err := c.cfg.JetStream.Stream(ctx, "KV_"+c.cfg.Bucket.Name)
	if err != nil {
		return fmt.Errorf("fleet: AV cache: %w", err)
	}
	subj := "$KV." + c.cfg.Bucket.Name + "." + versionToken(engine, version) + ".>"
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("fleet: AV cache: %w", err)
	}
	return nil
}
