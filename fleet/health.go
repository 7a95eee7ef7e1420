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
	// FleetSuspect reports the fleet-wide guard's verdict on Version: the
	// fleet's detection rate at this signature version is far above the
	// engine's baseline (a faulty update seen on any node), so the node
	// quarantines the engine's detections instead of rejecting them.
	FleetSuspect bool `json:"fleet_suspect,omitempty"`
}

// Healthy reports whether the engine is asked and trusted, by the node's
// guard and the fleet's.
func (e EngineHealth) Healthy() bool { return e.State == "closed" && !e.Suspect && !e.FleetSuspect }
