package scanner

import (
	"sync"
	"time"
)

// BreakerState is the state of an engine's circuit breaker.
type BreakerState int

const (
	Closed   BreakerState = iota // the engine is asked
	HalfOpen                     // one probe scan is let through
	Open                         // the engine is not asked until the cooldown ends
)

func (s BreakerState) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	}
	return "open"
}

// BreakerConfig tunes the per-engine circuit breaker.
type BreakerConfig struct {
	// Failures is how many consecutive unavailability errors open the
	// breaker. Default 3. Content errors (a corrupt attachment) never count:
	// one bad message must not take an engine out of service.
	Failures int
	// Cooldown is how long an open breaker waits before it lets one probe
	// scan through (half-open). Default 30 s.
	Cooldown time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Failures <= 0 {
		c.Failures = 3
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 30 * time.Second
	}
	return c
}

// breaker is a consecutive-failure circuit breaker with a single half-open
// probe: after the cooldown the next scan is the probe, and its outcome
// closes or re-opens the breaker.
type breaker struct {
	cfg   BreakerConfig
	now   func() time.Time
	mu    sync.Mutex
	state BreakerState
	fails int
	until time.Time // open until
	probe bool      // a half-open probe is in flight
}

// allow reports whether a scan may go to the engine now.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		if b.now().Before(b.until) {
			return false
		}
		b.state = HalfOpen
		b.probe = false
	}
	if b.probe {
		return false
	}
	b.probe = true
	return true
}

// record reports the outcome of an allowed scan; it returns the new state
// and whether it changed.
func (b *breaker) record(ok bool) (BreakerState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state
	if ok {
		b.state, b.fails, b.probe = Closed, 0, false
		return b.state, old != b.state
	}
	b.fails++
	if b.state == HalfOpen || b.fails >= b.cfg.Failures {
		b.state, b.probe = Open, false
		b.until = b.now().Add(b.cfg.Cooldown)
	}
	return b.state, old != b.state
}

// release ends a half-open probe that gave no verdict about the engine
// (the caller's context ended), so that the next scan probes again.
func (b *breaker) release() {
	b.mu.Lock()
	b.probe = false
	b.mu.Unlock()
}

func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && !b.now().Before(b.until) {
		return HalfOpen
	}
	return b.state
}
