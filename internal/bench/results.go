package bench

import "time"

// Results is everything one run measured; it is written as JSON and rendered as a table.
type Results struct {
	Machine    Machine          `json:"machine"`
	Settings   Settings         `json:"settings"`
	Throughput *Throughput      `json:"throughput,omitempty"`
	CNI        *CNIResult       `json:"cni,omitempty"`
	Mesh       []MeshResult     `json:"mesh,omitempty"`
	Joins      []JoinResult     `json:"joins,omitempty"`
	Resources  []ResourceResult `json:"resources,omitempty"`
	Goals      []Goal           `json:"goals"`
	Errors     []string         `json:"errors,omitempty"`
}

// Machine describes where and when the run happened.
type Machine struct {
	NProc     int       `json:"nproc"`
	CPU       string    `json:"cpu"`
	Kernel    string    `json:"kernel"`
	Go        string    `json:"go"`
	LoadStart string    `json:"loadavg_start"`
	LoadEnd   string    `json:"loadavg_end"`
	Started   time.Time `json:"started"`
	Seconds   Num       `json:"duration_s"`
	Command   string    `json:"command"`
}

// Settings are the knobs of the run.
type Settings struct {
	Sections   []string    `json:"sections"`
	Runs       int         `json:"runs"`
	IperfS     Num         `json:"iperf_s"`
	Variants   []string    `json:"variants"`
	MeshNodes  []int       `json:"mesh_nodes"`
	MeshRuns   int         `json:"mesh_runs"`
	Joins      map[int]int `json:"joins"`
	Peers      []int       `json:"peers"`
	SettleS    Num         `json:"settle_s"`
	WindowS    Num         `json:"window_s"`
	IdleS      Num         `json:"idle_window_s"`
	CNIOps     int         `json:"cni_ops"`
	WeftdFlags []string    `json:"weftd_extra_flags"`
}

// Throughput is the datapath section: the default set and one set per variant.
type Throughput struct {
	Runs     int                 `json:"runs"`
	Seconds  Num                 `json:"seconds_per_run"`
	Sets     []ThroughputSet     `json:"sets"`
	Offloads map[string][]string `json:"offloads,omitempty"`
}

// ThroughputSet is one configuration measured over interleaved runs.
type ThroughputSet struct {
	Variant string            `json:"variant"`
	Desc    string            `json:"desc"`
	Paths   []PathResult      `json:"paths"`
	Ratios  map[string]Ratios `json:"ratios"`
}

// PathResult is one path's samples, median and best run, in Gbit/s. Load from other processes
// only ever slows a run down, so the best run is the least disturbed one.
type PathResult struct {
	Name        string `json:"name"`
	Desc        string `json:"desc"`
	SamplesGbps []Num  `json:"samples_gbps"`
	MedianGbps  Num    `json:"median_gbps"`
	BestGbps    Num    `json:"best_gbps"`
}

// Ratios compares two paths: the ratio of their medians, the median of per-round ratios (the runs
// are interleaved, so it cancels slow drifts of the machine's load) and the ratio of best runs.
type Ratios struct {
	OfMedians      Num `json:"of_medians"`
	MedianPerRound Num `json:"median_per_round"`
	OfBest         Num `json:"of_best"`
}

// MeshResult is the cold-start time of one fabric size: from starting every weftd (no leases, no
// devices, no state) until every node routes every other node's subnet.
type MeshResult struct {
	Nodes         int   `json:"nodes"`
	RunsMs        []Num `json:"runs_ms"`
	MedianMs      Num   `json:"median_ms"`
	StartSpreadMs Num   `json:"start_spread_ms"`
}

// JoinResult is the join latency at one fabric size: from the joiner's lease appearing in etcd
// (and from its weftd's start) until every peer's kernel routes its subnet.
type JoinResult struct {
	Nodes         int     `json:"nodes"`
	LeaseToRouted Latency `json:"lease_to_routed"`
	StartToRouted Latency `json:"start_to_routed"`
	// Incomplete counts joins after which some peer had the route but not the neighbour or FDB
	// entry.
	Incomplete int `json:"incomplete"`
}

// ResourceResult is weftd's footprint over one window.
type ResourceResult struct {
	Scenario string `json:"scenario"`
	Nodes    int    `json:"nodes"`
	Peers    int    `json:"peers_per_node"`
	WindowS  Num    `json:"window_s"`
	// ProgramMs is how long the peers took to be routed on every node after they were written.
	ProgramMs Num `json:"program_ms"`
	// RSS at the end of the window: the median and the largest across nodes; RSSAnon the
	// anonymous part of the largest.
	RSSMiB     Num `json:"rss_mib"`
	RSSMaxMiB  Num `json:"rss_max_mib"`
	RSSAnonMiB Num `json:"rss_anon_mib"`
	// CPU over the window, median and largest across nodes, in millicores.
	CPUmc    Num `json:"cpu_millicores"`
	CPUMaxmc Num `json:"cpu_max_millicores"`
	// ChildCPUmc is the median CPU of the processes weftd ran and reaped (iptables).
	ChildCPUmc Num `json:"children_cpu_millicores"`
	// RSSGrowthKiB is the largest RSS change across nodes from the window's start to its end.
	RSSGrowthKiB Num `json:"rss_growth_kib"`
	// Go is node1's Go runtime figures from /metrics at the end of the window.
	Go map[string]Num `json:"go,omitempty"`
}

// CNIResult is CNI ADD and DEL through libcni on a running node.
type CNIResult struct {
	Add Latency `json:"add"`
	Del Latency `json:"del"`
}

// Goal is one of the goals and whether the run met it; Met is nil when the run cannot
// judge it.
type Goal struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Value  string `json:"value"`
	Met    *bool  `json:"met"`
}
