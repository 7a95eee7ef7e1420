package fleet

// EngineHealth is one AV engine of a node, as its status reports it.
type EngineHealth struct {
	Name string `json:"name"`
	// State is the engine's breaker: "closed" (asked), "half-open" (one
	// probe let through) or "open" (not asked: failing).
	State string `json:"state"`
	// Version is the engine's signature version, when it said.
	Version string `json:"version,omitempty"`
	// Suspect reports the faulty-update guard's verdict: the engine
	// detects far above its baseline, so its detections quarantine.
	Suspect bool `json:"suspect,omitempty"`
}

// Healthy reports whether the engine is asked and trusted.
func (e EngineHealth) Healthy() bool { return e.State == "closed" && !e.Suspect }
