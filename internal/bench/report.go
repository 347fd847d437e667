package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// f renders a figure with the given decimals, "-" when it was not measured.
func f(n Num, decimals int) string {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return "-"
	}
	return fmt.Sprintf("%.*f", decimals, float64(n))
}

// WriteTable renders the results for a terminal.
func WriteTable(w io.Writer, res *Results) {
	m := res.Machine
	fmt.Fprintf(w, "weft bench — %d CPUs (%s), kernel %s, %s, load %s → %s, %ss\n",
		m.NProc, m.CPU, m.Kernel, m.Go, m.LoadStart, m.LoadEnd, f(m.Seconds, 0))
	if t := res.Throughput; t != nil {
		writeThroughput(w, t)
	}
	if c := res.CNI; c != nil {
		fmt.Fprintf(w, "\nCNI through libcni (weft + portmap), ms over %d ops: ADD p50 %s p99 %s max %s; DEL p50 %s p99 %s max %s\n",
			c.Add.Count, f(c.Add.P50, 1), f(c.Add.P99, 1), f(c.Add.Max, 1), f(c.Del.P50, 1), f(c.Del.P99, 1), f(c.Del.Max, 1))
	}
	if len(res.Mesh) > 0 || len(res.Joins) > 0 {
		writeConvergence(w, res)
	}
	if len(res.Resources) > 0 {
		fmt.Fprintln(w, "\nweftd footprint per node (median / max across nodes)")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "scenario\tpeers\twindow s\tRSS MiB\tanon MiB\tCPU mc\t+ children mc\tRSS growth KiB\tGo heap in use MiB\tprogrammed in ms")
		for _, r := range res.Resources {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s / %s\t%s\t%s / %s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Peers, f(r.WindowS, 0),
				f(r.RSSMiB, 1), f(r.RSSMaxMiB, 1), f(r.RSSAnonMiB, 1), f(r.CPUmc, 2), f(r.CPUMaxmc, 2), f(r.ChildCPUmc, 2),
				f(r.RSSGrowthKiB, 0), goHeap(r), f(r.ProgramMs, 0))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nGoals")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, g := range res.Goals {
		met := "not judged"
		if g.Met != nil {
			met = map[bool]string{true: "met", false: "MISSED"}[*g.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, g.Target, g.Value, met)
	}
	tw.Flush()
	for _, e := range res.Errors {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
}

// writeThroughput writes the throughput tables: every path's runs, then the ratios.
func writeThroughput(w io.Writer, t *Throughput) {
	fmt.Fprintf(w, "\nTCP throughput, Gbit/s: iperf3, one stream, median of %d interleaved runs of %ss\n", t.Runs, f(t.Seconds, 0))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\tpath\tmedian\tbest\truns")
	for _, s := range t.Sets {
		for _, p := range s.Paths {
			var runs []string
			for _, g := range p.SamplesGbps {
				runs = append(runs, f(g, 2))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Variant, p.Name, f(p.MedianGbps, 2), f(p.BestGbps, 2), strings.Join(runs, " "))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\tratio\tof medians\tmedian of per-round\tof best runs")
	for _, s := range t.Sets {
		for _, k := range slices.Sorted(maps.Keys(s.Ratios)) {
			r := s.Ratios[k]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Variant, k, f(r.OfMedians, 3), f(r.MedianPerRound, 3), f(r.OfBest, 3))
		}
	}
	tw.Flush()
}

// writeConvergence writes the convergence table: per fabric size, the cold start and the joins.
func writeConvergence(w io.Writer, res *Results) {
	fmt.Fprintln(w, "\nConvergence, ms (routes seen through netlink notifications)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "nodes\tcold start → full mesh (median; runs)\tjoins\tlease → routed p50/p99/max\tweftd start → routed p50/p99/max")
	for _, n := range meshSizes(res) {
		mesh, joins := "-", "-"
		lease, start := "-", "-"
		for _, m := range res.Mesh {
			if m.Nodes == n {
				var runs []string
				for _, x := range m.RunsMs {
					runs = append(runs, f(x, 0))
				}
				mesh = fmt.Sprintf("%s (%s)", f(m.MedianMs, 0), strings.Join(runs, " "))
			}
		}
		for _, j := range res.Joins {
			if j.Nodes == n {
				joins = fmt.Sprint(j.LeaseToRouted.Count)
				if j.Incomplete > 0 {
					joins += fmt.Sprintf(" (%d incomplete)", j.Incomplete)
				}
				lease = fmt.Sprintf("%s / %s / %s", f(j.LeaseToRouted.P50, 0), f(j.LeaseToRouted.P99, 0), f(j.LeaseToRouted.Max, 0))
				start = fmt.Sprintf("%s / %s / %s", f(j.StartToRouted.P50, 0), f(j.StartToRouted.P99, 0), f(j.StartToRouted.Max, 0))
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", n, mesh, joins, lease, start)
	}
	tw.Flush()
}

func goHeap(r ResourceResult) string {
	if v, ok := r.Go["go_memstats_heap_inuse_mib"]; ok {
		return f(v, 1)
	}
	return "-"
}

func meshSizes(res *Results) []int {
	var out []int
	for _, m := range res.Mesh {
		out = append(out, m.Nodes)
	}
	for _, j := range res.Joins {
		out = append(out, j.Nodes)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// goals judges the goals on what the run measured; a goal whose figure is missing is
// listed as not judged.
func goals(res *Results) []Goal {
	var out []Goal
	judge := func(name, target string, value Num, unit string, decimals int, ok func(float64) bool) {
		g := Goal{Name: name, Target: target, Value: "-"}
		if !math.IsNaN(float64(value)) {
			g.Value = f(value, decimals) + unit
			met := ok(float64(value))
			g.Met = &met
		}
		out = append(out, g)
	}
	ratio := Num(math.NaN())
	underlay := Num(math.NaN())
	if t := res.Throughput; t != nil && len(t.Sets) > 0 {
		if r, ok := t.Sets[0].Ratios[PathWeft+"/"+PathHandBuilt]; ok {
			ratio = r.MedianPerRound
		}
		if r, ok := t.Sets[0].Ratios[PathWeft+"/"+PathUnderlay]; ok {
			underlay = r.MedianPerRound
		}
	}
	judge("cross-node throughput, weft / hand-built VXLAN", "≥ 0.95", ratio, "", 3, func(v float64) bool { return v >= 0.95 })
	out = append(out, Goal{Name: "cross-node throughput, weft / underlay", Target: "reported (kernel VXLAN ~0.83–0.86)", Value: f(underlay, 3)})
	p99 := Num(math.NaN())
	for _, j := range res.Joins {
		if j.Nodes == 10 {
			p99 = j.LeaseToRouted.P99
		}
	}
	judge("join routed on all peers, p99 at N=10", "≤ 250 ms", p99, " ms", 0, func(v float64) bool { return v <= 250 })
	rss := map[int]Num{100: Num(math.NaN()), 1000: Num(math.NaN())}
	cpu100, children100 := Num(math.NaN()), Num(math.NaN())
	growth, growthAt := Num(math.NaN()), ""
	for _, r := range res.Resources {
		synthetic := r.Peers - (r.Nodes - 1)
		if _, ok := rss[synthetic]; ok {
			rss[synthetic] = r.RSSMaxMiB
		}
		if synthetic == 100 {
			cpu100, children100 = r.CPUMaxmc, r.ChildCPUmc
		}
		if math.IsNaN(float64(growth)) || math.Abs(float64(r.RSSGrowthKiB)) > math.Abs(float64(growth)) {
			growth, growthAt = r.RSSGrowthKiB, fmt.Sprintf(" (%s, %s s window)", r.Scenario, f(r.WindowS, 0))
		}
	}
	judge("weftd RSS with 100 synthetic peers (max across nodes)", "≤ 25 MiB", rss[100], " MiB", 1, func(v float64) bool { return v <= 25 })
	judge("weftd RSS with 1,000 synthetic peers (max across nodes)", "≤ 40 MiB", rss[1000], " MiB", 1, func(v float64) bool { return v <= 40 })
	judge("weftd idle CPU with 100 synthetic peers (max across nodes)", "≤ 5 millicores", cpu100, " mc", 2, func(v float64) bool { return v <= 5 })
	if !math.IsNaN(float64(children100)) {
		out[len(out)-1].Value += " (+" + f(children100, 2) + " mc in iptables children)"
	}
	if !math.IsNaN(float64(growth)) {
		out = append(out, Goal{Name: "RSS growth, largest over the windows", Target: "none over 30 min (soak not run here)", Value: f(growth, 0) + " KiB" + growthAt})
	}
	return out
}
