package filter

// Metrics receives the counters, gauges and observations of every
// Portcullis package. Names are snake case with a unit suffix
// (portcullis_filter_seconds); labels are alternating key, value pairs.
//
// The interface is small on purpose: packages never import a metrics
// library, and a gateway adapts it to Prometheus or anything else. A nil
// Metrics anywhere means NopMetrics.
type Metrics interface {
	// Add adds delta to a counter.
	Add(name string, delta float64, labels ...string)
	// Set sets a gauge.
	Set(name string, value float64, labels ...string)
	// Observe records one observation in a histogram (seconds for times).
	Observe(name string, value float64, labels ...string)
}

// NopMetrics discards everything.
type NopMetrics struct{}

func (NopMetrics) Add(string, float64, ...string)     {}
func (NopMetrics) Set(string, float64, ...string)     {}
func (NopMetrics) Observe(string, float64, ...string) {}

// OrNop returns m, or NopMetrics when m is nil.
func OrNop(m Metrics) Metrics {
	if m == nil {
		return NopMetrics{}
	}
	return m
}
