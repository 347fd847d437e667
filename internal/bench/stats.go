package bench

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Num is a measured figure; NaN means "not measured" and renders as JSON null.
type Num float64

// MarshalJSON renders NaN and infinities as null.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// Median returns the median of xs (the mean of the two middle values for an even count), or NaN
// for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of xs by nearest rank, or NaN for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

// Ratio returns a/b, or NaN when b is not positive.
func Ratio(a, b float64) float64 {
	if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// Latency summarises latency samples in milliseconds.
type Latency struct {
	Count int `json:"count"`
	P50   Num `json:"p50_ms"`
	P99   Num `json:"p99_ms"`
	Max   Num `json:"max_ms"`
}

// Summarize returns the summary of samples.
func Summarize(samples []time.Duration) Latency {
	ms := make([]float64, len(samples))
	for i, d := range samples {
		ms[i] = float64(d) / float64(time.Millisecond)
	}
	return Latency{Count: len(ms), P50: round(Percentile(ms, 50), 1), P99: round(Percentile(ms, 99), 1), Max: round(Percentile(ms, 100), 1)}
}

// round rounds x to the given number of decimals; NaN stays NaN.
func round(x float64, decimals int) Num {
	p := math.Pow(10, float64(decimals))
	return Num(math.Round(x*p) / p)
}
