package bench

import (
	"bytes"
	"flag"
	"math"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixture is a complete set of results: the default throughput set misses the 0.95 goal, the
// joins meet theirs, and the resource figures miss RSS at 100 peers and the idle CPU goal.
func fixture() *Results {
	path := func(name string, gbps ...Num) PathResult {
		var xs []float64
		for _, g := range gbps {
			xs = append(xs, float64(g))
		}
		return PathResult{Name: name, SamplesGbps: gbps, MedianGbps: round(Median(xs), 3), BestGbps: round(Percentile(xs, 100), 3)}
	}
	res := &Results{
		Machine: Machine{NProc: 2, CPU: "AMD EPYC", Kernel: "6.18.44", Go: "go1.26.8", LoadStart: "1.00 2.00 3.00", LoadEnd: "2.00 2.00 3.00",
			Started: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC), Seconds: 842.4},
		Throughput: &Throughput{Runs: 3, Seconds: 3, Sets: []ThroughputSet{
			{Variant: "default", Paths: []PathResult{path(PathUnderlay, 10, 11, 12), path(PathHandBuilt, 9, 9.5, 10), path(PathWeft, 8, 8.5, 9)},
				Ratios: map[string]Ratios{
					PathWeft + "/" + PathHandBuilt: {OfMedians: 0.895, MedianPerRound: 0.9, OfBest: 0.9},
					PathWeft + "/" + PathUnderlay:  {OfMedians: 0.773, MedianPerRound: 0.77, OfBest: 0.75},
				}},
			{Variant: VariantGRO, Paths: []PathResult{path(PathWeft, 9, 9.5, Num(math.NaN()))},
				Ratios: map[string]Ratios{PathWeft + "/" + PathUnderlay: {OfMedians: 0.9, MedianPerRound: 0.91, OfBest: Num(math.NaN())}}},
		}},
		CNI:  &CNIResult{Add: Latency{Count: 100, P50: 40.1, P99: 80.2, Max: 95}, Del: Latency{Count: 100, P50: 30, P99: 60.5, Max: 61}},
		Mesh: []MeshResult{{Nodes: 3, RunsMs: []Num{700, 760, 800}, MedianMs: 760}, {Nodes: 10, RunsMs: []Num{2000}, MedianMs: 2000}},
		Joins: []JoinResult{
			{Nodes: 10, LeaseToRouted: Latency{Count: 100, P50: 130, P99: 180, Max: 190}, StartToRouted: Latency{Count: 100, P50: 250, P99: 400, Max: 410}, Incomplete: 1},
			{Nodes: 20, LeaseToRouted: Latency{Count: 20, P50: 140, P99: 300, Max: 300}, StartToRouted: Latency{Count: 20, P50: 260, P99: 500, Max: 500}},
		},
		Resources: []ResourceResult{
			{Scenario: "idle", Nodes: 3, Peers: 2, WindowS: 30, ProgramMs: Num(math.NaN()), RSSMiB: 28, RSSMaxMiB: 28.5, RSSAnonMiB: 11, CPUmc: 10, CPUMaxmc: 12, ChildCPUmc: 4.5, RSSGrowthKiB: 100},
			{Scenario: "100 synthetic peers", Nodes: 3, Peers: 102, WindowS: 60, ProgramMs: 180, RSSMiB: 30, RSSMaxMiB: 31, RSSAnonMiB: 13, CPUmc: 11, CPUMaxmc: 12.5, ChildCPUmc: 4.4, RSSGrowthKiB: -64,
				Go: map[string]Num{"go_memstats_heap_inuse_mib": 8.5}},
			{Scenario: "1000 synthetic peers", Nodes: 3, Peers: 1002, WindowS: 60, ProgramMs: 440, RSSMiB: 34, RSSMaxMiB: 35, RSSAnonMiB: 17, CPUmc: 17, CPUMaxmc: 18, ChildCPUmc: 4.6, RSSGrowthKiB: 900},
		},
		Errors: []string{"mesh N=20: cold start 2: not within the deadline"},
	}
	res.Goals = goals(res)
	return res
}

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name, golden string
		res          *Results
	}{
		{"complete", "testdata/table-complete.golden", fixture()},
		{"nothing measured", "testdata/table-empty.golden", func() *Results { r := &Results{}; r.Goals = goals(r); return r }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			WriteTable(&buf, tc.res)
			if *update {
				if err := os.WriteFile(tc.golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("table differs from %s (run with -update after checking):\n%s", tc.golden, buf.String())
			}
		})
	}
}
