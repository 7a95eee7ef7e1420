package scanner

import (
	"sync"
)

// GuardConfig tunes the faulty-update guard: per engine, the detection rate
// over a sliding window of its last scans is compared with its baseline;
// when it jumps above Multiple times the baseline, the engine is suspect and
// its detections that no other engine confirms demand quarantine instead of
// reject (a faulty signature update flags clean mail; quarantined mail can
// be re-scanned and released, rejected mail is gone).
type GuardConfig struct {
	// Window is how many recent scans the rate is taken over. Default 200.
	Window int
	// MinScans is how many scans the window must hold before the guard
	// judges. Default 20.
	MinScans int
	// Multiple is how far above the baseline the rate must jump. Default 4.
	Multiple float64
	// Baseline is the expected detection rate (0..1). The learned baseline
	// (a slow moving average over scans while the engine is not suspect)
	// never drops below it. Default 0.05.
	Baseline float64
	// Disabled turns the guard off.
	Disabled bool
}

func (c GuardConfig) withDefaults() GuardConfig {
	if c.Window <= 0 {
		c.Window = 200
	}
	if c.MinScans <= 0 {
		c.MinScans = 20
	}
	c.MinScans = min(c.MinScans, c.Window)
	if c.Multiple <= 0 {
		c.Multiple = 4
	}
	if c.Baseline <= 0 {
		c.Baseline = 0.05
	}
	return c
}

// guard keeps one engine's detection history.
type guard struct {
	cfg      GuardConfig
	mu       sync.Mutex
	ring     []bool
	next     int
	n        int
	hits     int
	baseline float64 // learned; 0 until the window first fills
}

func newGuard(cfg GuardConfig) *guard {
	return &guard{cfg: cfg, ring: make([]bool, cfg.Window)}
}

// record adds one scan outcome and returns the windowed rate, the baseline
// in force, whether the engine is suspect now and whether that changed.
func (g *guard) record(hit bool) (rate, base float64, suspect, changed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, _, was := g.stateLocked()
	if g.n == len(g.ring) {
		if g.ring[g.next] {
			g.hits--
		}
	} else {
		g.n++
	}
	g.ring[g.next] = hit
	if hit {
		g.hits++
	}
	g.next = (g.next + 1) % len(g.ring)
	rate, base, suspect = g.stateLocked()
	if !suspect && g.n >= g.cfg.MinScans {
		// Learn slowly, and only while the engine looks healthy, so that a
		// faulty update does not become the new normal.
		const alpha = 0.002
		if g.baseline == 0 {
			g.baseline = rate
		} else {
			g.baseline += alpha * (rate - g.baseline)
		}
	}
	return rate, base, suspect, suspect != was
}

func (g *guard) stateLocked() (rate, base float64, suspect bool) {
	if g.n == 0 {
		return 0, g.cfg.Baseline, false
	}
	rate = float64(g.hits) / float64(g.n)
	base = max(g.baseline, g.cfg.Baseline)
	return rate, base, !g.cfg.Disabled && g.n >= g.cfg.MinScans && rate > g.cfg.Multiple*base
}

func (g *guard) state() (rate, base float64, suspect bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stateLocked()
}
