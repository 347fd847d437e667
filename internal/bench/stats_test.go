package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestMedianPercentileRatio(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		xs   []float64
		want string // median p50 p99 p100
	}{
		{"none", nil, "NaN NaN NaN NaN"},
		{"one", []float64{3}, "3 3 3 3"},
		{"odd, unsorted", []float64{5, 1, 3}, "3 3 5 5"},
		{"even", []float64{4, 1, 3, 2}, "2.5 2 4 4"},
		{"hundred", seq(100), "50.5 50 99 100"},
		{"two", []float64{2, 1}, "1.5 1 2 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fmt.Sprint(Median(tc.xs), Percentile(tc.xs, 50), Percentile(tc.xs, 99), Percentile(tc.xs, 100))
			if got != tc.want {
				t.Errorf("median p50 p99 p100 = %s, want %s", got, tc.want)
			}
		})
	}
	ratios := []struct {
		a, b float64
		want string
	}{{3, 2, "1.5"}, {1, 0, "NaN"}, {1, -1, "NaN"}, {nan, 1, "NaN"}}
	for _, tc := range ratios {
		if got := fmt.Sprint(Ratio(tc.a, tc.b)); got != tc.want {
			t.Errorf("Ratio(%v, %v) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
	if got := fmt.Sprint(Percentile([]float64{1}, 0), Percentile([]float64{1}, 101)); got != "NaN NaN" {
		t.Errorf("out-of-range percentiles = %s, want NaN NaN", got)
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(n - i)
	}
	return out
}

func TestSummarizeAndNumJSON(t *testing.T) {
	var samples []time.Duration
	for i := 1; i <= 200; i++ {
		samples = append(samples, time.Duration(i)*time.Millisecond+123*time.Microsecond)
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"summary", Summarize(samples), `{"count":200,"p50_ms":100.1,"p99_ms":198.1,"max_ms":200.1}`},
		{"empty summary", Summarize(nil), `{"count":0,"p50_ms":null,"p99_ms":null,"max_ms":null}`},
		{"infinity", []Num{Num(math.Inf(1)), 1.5}, `[null,1.5]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got %s, want %s", b, tc.want)
			}
		})
	}
}
