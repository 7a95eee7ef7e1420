// Package prommetrics adapts filter.Metrics to Prometheus, so that the
// library packages never import a metrics library. Collectors are created
// on first use from the metric name and its label keys, and registered with
// the given registerer (never the global one unless you pass it).
//
// A name reused with other label keys, or with another kind (counter,
// gauge, histogram), is a programming error: it is counted in
// portcullis_metrics_errors_total and the observation is dropped, never a
// panic on the mail path.
package prommetrics

import (
	"strings"
	"sync"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics implements filter.Metrics.
type Metrics struct {
	reg     prometheus.Registerer
	buckets []float64

	mu     sync.Mutex
	vecs   map[string]collector
	errors prometheus.Counter
}

var _ filter.Metrics = (*Metrics)(nil)

type collector struct {
	kind string
	keys []string
	vec  any // *prometheus.CounterVec, *GaugeVec or *HistogramVec
}

// New returns an adapter that registers its collectors with reg. buckets
// are the histogram buckets (nil: prometheus.DefBuckets, which suit
// durations in seconds).
func New(reg prometheus.Registerer, buckets []float64) *Metrics {
	if buckets == nil {
		buckets = prometheus.DefBuckets
	}
	m := &Metrics{reg: reg, buckets: buckets, vecs: map[string]collector{}}
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_metrics_errors_total",
		Help: "Observations dropped because a metric name was reused with other labels or kind.",
	})
	reg.MustRegister(m.errors)
	return m
}

func split(labels []string) (keys, values []string) {
	for i := 0; i+1 < len(labels); i += 2 {
		keys = append(keys, labels[i])
		values = append(values, labels[i+1])
	}
	return keys, values
}

func (m *Metrics) get(kind, name string, keys []string) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.vecs[name]; ok {
		if c.kind != kind || strings.Join(c.keys, ",") != strings.Join(keys, ",") {
			m.errors.Inc()
			return nil
		}
		return c.vec
	}
	help := "Portcullis " + strings.ReplaceAll(name, "_", " ") + "."
	var vec any
	var col prometheus.Collector
	switch kind {
	case "counter":
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, keys)
		vec, col = v, v
	case "gauge":
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, keys)
		vec, col = v, v
	default:
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: m.buckets}, keys)
		vec, col = v, v
	}
	if err := m.reg.Register(col); err != nil {
		m.errors.Inc()
		return nil
	}
	m.vecs[name] = collector{kind: kind, keys: keys, vec: vec}
	return vec
}

// Add implements filter.Metrics.
func (m *Metrics) Add(name string, delta float64, labels ...string) {
	keys, values := split(labels)
	if v, ok := m.get("counter", name, keys).(*prometheus.CounterVec); ok && delta >= 0 {
		v.WithLabelValues(values...).Add(delta)
	}
}

// Set implements filter.Metrics.
func (m *Metrics) Set(name string, value float64, labels ...string) {
	keys, values := split(labels)
	if v, ok := m.get("gauge", name, keys).(*prometheus.GaugeVec); ok {
		v.WithLabelValues(values...).Set(value)
	}
}

// Observe implements filter.Metrics.
func (m *Metrics) Observe(name string, value float64, labels ...string) {
	keys, values := split(labels)
	if v, ok := m.get("histogram", name, keys).(*prometheus.HistogramVec); ok {
		v.WithLabelValues(values...).Observe(value)
	}
}
