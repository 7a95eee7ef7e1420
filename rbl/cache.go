package rbl

import (
	"net/netip"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// entry is a cached lookup: listed (with its codes and reason) or not
// listed. Unknown outcomes are never cached: the next message asks again.
type entry struct {
	listed  bool
	addrs   []netip.Addr
	reason  string
	expires time.Time
}

// cache is a bounded LRU of lookups by query name, honouring each answer's
// TTL within [minTTL, maxTTL].
type cache struct {
	lru            *lru.Cache[string, entry]
	minTTL, maxTTL time.Duration
}

func newCache(size int, minTTL, maxTTL time.Duration) *cache {
	l, _ := lru.New[string, entry](size) // size > 0 checked by Config
	return &cache{lru: l, minTTL: minTTL, maxTTL: maxTTL}
}

func (c *cache) get(name string, now time.Time) (entry, bool) {
	e, ok := c.lru.Get(name)
	if !ok {
		return entry{}, false
	}
	if !now.Before(e.expires) {
		c.lru.Remove(name)
		return entry{}, false
	}
	return e, true
}

// put stores e for ttl, clamped; hasTTL false means the answer carried
// none (a negative answer without SOA) and gets the minimum.
func (c *cache) put(name string, e entry, ttl time.Duration, hasTTL bool, now time.Time) {
	if !hasTTL {
		ttl = c.minTTL
	}
	ttl = max(c.minTTL, min(ttl, c.maxTTL))
	e.expires = now.Add(ttl)
	c.lru.Add(name, e)
}

func (c *cache) len() int { return c.lru.Len() }
