package main

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The model's pieces against closed forms: if one drifts, every sizing
// figure in docs/SCALE.md drifts with it.

func TestDiurnalMeanIsOne(t *testing.T) {
	sum, n := 0.0, 24*60
	for i := range n {
		sum += diurnal(float64(i) / 60)
	}
	if mean := sum / float64(n); math.Abs(mean-1) > 0.001 {
		t.Fatalf("mean of the arrival curve over a day %.4f, want 1", mean)
	}
	if lo, hi := diurnal(3.5), diurnal(15.5); lo > 0.35 || hi < 1.65 {
		t.Fatalf("trough %.2f at 03:30 and peak %.2f at 15:30, want about 0.2 and 1.8", lo, hi)
	}
}

func TestErlangC(t *testing.T) {
	for _, c := range []struct {
		servers int
		load    float64
		want    float64
	}{
		{1, 0.5, 0.5},      // M/M/1: an arrival waits with probability rho
		{2, 1, 1.0 / 3},    // textbook value
		{10, 8, 0.409},     // tables: 0.4092
		{4, 4, 1},          // saturated
		{8, 0.0001, 0.000}, // idle
	} {
		if got := erlangC(c.servers, c.load); math.Abs(got-c.want) > 0.001 {
			t.Errorf("erlangC(%d, %v) = %.4f, want %.4f", c.servers, c.load, got, c.want)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(float64(i)/1000, 1) // 1 ms … 1 s, uniform
	}
	for _, c := range []struct{ p, want float64 }{{0.5, 0.5}, {0.99, 0.99}} {
		// Buckets are 1/50 of a decade wide: within 5 %.
		if got := h.q(c.p); math.Abs(got-c.want)/c.want > 0.05 {
			t.Errorf("q(%v) = %.4f, want %.4f ± 5%%", c.p, got, c.want)
		}
	}
}

func TestPoissonMean(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, mean := range []float64{0.3, 7, 400} {
		sum, n := 0.0, 20000
		for range n {
			sum += poisson(r, mean)
		}
		if got := sum / float64(n); math.Abs(got-mean) > 0.05*mean+0.02 {
			t.Errorf("poisson mean %.3f, want %v", got, mean)
		}
	}
}
