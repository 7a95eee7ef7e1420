package scanner

import (
	"container/list"
	"sync"
	"time"
)

// CacheConfig tunes the result cache. Results are kept per engine, keyed by
// the SHA-256 of the scanned bytes and the engine's signature version (see
// Versioner): a new signature version misses every older entry. Errors are
// never cached.
type CacheConfig struct {
	// Entries bounds the cache. Default 10,000; negative disables caching.
	Entries int
	// TTL bounds an entry's age. Default 1 hour.
	TTL time.Duration
	// VersionTTL is how long an engine's version is trusted before it is
	// asked again. Default 1 minute.
	VersionTTL time.Duration
}

func (c CacheConfig) withDefaults() CacheConfig {
	if c.Entries == 0 {
		c.Entries = 10000
	}
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	if c.VersionTTL <= 0 {
		c.VersionTTL = time.Minute
	}
	return c
}

type cacheKey struct {
	sum     [32]byte
	engine  string
	version string
}

type cacheEntry struct {
	key     cacheKey
	res     Result
	expires time.Time
}

// cache is a bounded LRU with a TTL per entry.
type cache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	ll    *list.List
	items map[cacheKey]*list.Element
}

func newCache(cfg CacheConfig, now func() time.Time) *cache {
	if cfg.Entries < 0 {
		return nil
	}
	return &cache{max: cfg.Entries, ttl: cfg.TTL, now: now, ll: list.New(), items: make(map[cacheKey]*list.Element)}
}

func (c *cache) get(k cacheKey) (Result, bool) {
	if c == nil {
		return Result{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*cacheEntry)
	if c.now().After(e.expires) {
		c.ll.Remove(el)
		delete(c.items, k)
		return Result{}, false
	}
	c.ll.MoveToFront(el)
	return e.res, true
}

func (c *cache) put(k cacheKey, r Result) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		e.res, e.expires = r, c.now().Add(c.ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, res: r, expires: c.now().Add(c.ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// purge drops every entry.
func (c *cache) purge() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.ll.Len()
	c.ll.Init()
	clear(c.items)
	return n
}
