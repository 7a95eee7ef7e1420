package prommetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKindsAndMisuse(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, []float64{0.1, 1})
	m.Add("x_total", 2, "filter", "a")
	m.Add("x_total", 1, "filter", "a")
	m.Set("depth", 7)
	m.Observe("lat_seconds", 0.5, "resolver", "r1")
	// Misuse: other labels, other kind. Dropped and counted, no panic.
	m.Add("x_total", 1, "other", "b")
	m.Set("x_total", 1, "filter", "a")
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP x_total Portcullis x total.
# TYPE x_total counter
x_total{filter="a"} 3
# HELP depth Portcullis depth.
# TYPE depth gauge
depth 7
# HELP portcullis_metrics_errors_total Observations dropped because a metric name was reused with other labels or kind.
# TYPE portcullis_metrics_errors_total counter
portcullis_metrics_errors_total 2
`), "x_total", "depth", "portcullis_metrics_errors_total")
	require.NoError(t, err)
	n, err := testutil.GatherAndCount(reg, "lat_seconds")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}
