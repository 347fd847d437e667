package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weft-net/weft/internal/flagenv"
)

// ErrUsage marks an invalid flag or config value; the error names the field.
var ErrUsage = errors.New("usage")

// Sections of a run, in the order they run.
const (
	SectionThroughput = "throughput"
	SectionCNI        = "cni"
	SectionMesh       = "mesh"
	SectionResources  = "resources"
)

// AllSections is every section, in run order.
var AllSections = []string{SectionThroughput, SectionCNI, SectionMesh, SectionResources}

// Throughput variants tried on top of the defaults.
const (
	VariantGRO     = "gro"
	VariantNoTrack = "notrack"
	VariantMTU9000 = "mtu9000"
)

var allVariants = []string{VariantGRO, VariantNoTrack, VariantMTU9000}

// Config is one benchmark run.
type Config struct {
	// Dir holds every lab's state and logs; it is removed at the end. Dir+".lock" keeps two runs
	// apart.
	Dir string
	// Prefix starts every network namespace the run creates; leftovers with it are removed first.
	Prefix string
	// BinDir holds weftd, weftctl, weft and portmap; Conflist is the shipped CNI conflist.
	BinDir   string
	Conflist string
	// Out is the JSON results file.
	Out string
	// Sections to run (AllSections by default).
	Sections []string
	// Runs is the number of interleaved throughput runs per path; IperfTime the measured seconds
	// of each (after one omitted second of slow start). Variants are tried after the defaults.
	Runs      int
	IperfTime time.Duration
	Variants  []string
	// MeshNodes are the fabric sizes whose cold start is timed MeshRuns times each; Joins is the
	// number of timed joins per size.
	MeshNodes []int
	MeshRuns  int
	Joins     map[int]int
	// Peers are the synthetic peer counts for the resource windows; Settle is the wait before
	// each window, Window its length for the peer counts and IdleWindow for the idle fabric.
	Peers      []int
	Settle     time.Duration
	Window     time.Duration
	IdleWindow time.Duration
	// CNIOps is the number of timed ADDs (and DELs), in batches of CNIBatch pods.
	CNIOps   int
	CNIBatch int
	// WeftdFlags are appended to every weftd's command line (the lab's own flags come first).
	WeftdFlags []string

	// Log receives progress; Table receives the final table.
	Log   *slog.Logger
	Table io.Writer
}

// DefaultWeftdFlags restore weftd's default probe interval: the lab probes every second for its
// tests, the bench measures weftd as shipped.
var DefaultWeftdFlags = []string{"-probe-interval=5s"}

// DefaultConfig returns the config of `make bench`.
func DefaultConfig() Config {
	return Config{
		Dir: "/tmp/weft-bench", Prefix: "wb-", BinDir: "bin", Conflist: "etc/10-weft.conflist",
		Out: "/tmp/weft-bench.json", Sections: slices.Clone(AllSections),
		Runs: 7, IperfTime: 2 * time.Second, Variants: slices.Clone(allVariants),
		MeshNodes: []int{3, 10, 20}, MeshRuns: 3, Joins: map[int]int{3: 20, 10: 100, 20: 20},
		Peers: []int{100, 1000}, Settle: 10 * time.Second, Window: 60 * time.Second, IdleWindow: 30 * time.Second,
		CNIOps: 100, CNIBatch: 20, WeftdFlags: slices.Clone(DefaultWeftdFlags),
	}
}

// Validate checks the config, naming the field at fault.
func (c *Config) Validate() error {
	bad := func(field string, val any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrUsage, field, val, why)
	}
	switch {
	case c.Dir == "" || !filepath.IsAbs(c.Dir) || filepath.Clean(c.Dir) == "/":
		return bad("Dir", c.Dir, "want an absolute directory other than /")
	case c.Prefix == "" || len(c.Prefix) > 6 || strings.ContainsAny(c.Prefix, "/ \t"):
		return bad("Prefix", c.Prefix, "want 1 to 6 characters without / or spaces (namespace names are built from it)")
	case c.BinDir == "":
		return bad("BinDir", c.BinDir, "must not be empty")
	case c.Conflist == "":
		return bad("Conflist", c.Conflist, "must not be empty")
	case c.Out == "":
		return bad("Out", c.Out, "must not be empty")
	case strings.HasPrefix(filepath.Clean(c.Out), filepath.Clean(c.Dir)+"/"):
		return bad("Out", c.Out, "must not be inside Dir, which is removed at the end")
	case len(c.Sections) == 0:
		return bad("Sections", "", "at least one section is needed")
	case c.Runs < 1 || c.Runs > 50:
		return bad("Runs", c.Runs, "want 1..50")
	case c.IperfTime < time.Second || c.IperfTime > time.Minute:
		return bad("IperfTime", c.IperfTime, "want 1s..1m")
	case c.MeshRuns < 1:
		return bad("MeshRuns", c.MeshRuns, "want at least 1")
	case c.Settle < 0:
		return bad("Settle", c.Settle, "must not be negative")
	case c.Window < 5*time.Second || c.IdleWindow < 5*time.Second:
		return bad("Window", fmt.Sprintf("%v/%v", c.Window, c.IdleWindow), "windows must be at least 5s")
	case c.CNIOps < 1 || c.CNIBatch < 1 || c.CNIBatch > 200:
		return bad("CNIOps", fmt.Sprintf("%d/%d", c.CNIOps, c.CNIBatch), "want at least 1 op in batches of 1..200")
	}
	for _, fl := range c.WeftdFlags {
		if !strings.HasPrefix(fl, "-") {
			return bad("WeftdFlags", fl, "want -flag=value words")
		}
	}
	for _, s := range c.Sections {
		if !slices.Contains(AllSections, s) {
			return bad("Sections", s, "want one of "+strings.Join(AllSections, ", "))
		}
	}
	for _, v := range c.Variants {
		if !slices.Contains(allVariants, v) {
			return bad("Variants", v, "want one of "+strings.Join(allVariants, ", "))
		}
	}
	for _, n := range c.MeshNodes {
		if n < 2 || n > 200 {
			return bad("MeshNodes", n, "want 2..200 nodes")
		}
	}
	for n, j := range c.Joins {
		if j < 0 || !slices.Contains(c.MeshNodes, n) {
			return bad("Joins", fmt.Sprintf("%d:%d", n, j), "want a non-negative count at one of the MeshNodes sizes")
		}
	}
	for _, p := range c.Peers {
		if p < 1 || p > 1000 {
			return bad("Peers", p, "want 1..1000 synthetic peers (the pod network holds 1,024 /26 subnets)")
		}
	}
	return nil
}

// has reports whether section s is to run.
func (c *Config) has(s string) bool { return slices.Contains(c.Sections, s) }

// ParseFlags parses weft-bench's command line (and WEFT_* variables) over DefaultConfig. Errors wrap
// ErrUsage and name the flag.
func ParseFlags(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("weft-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sections, variants := strings.Join(c.Sections, ","), strings.Join(c.Variants, ",")
	meshNodes, joins, peers := "3,10,20", "3:20,10:100,20:20", "100,1000"
	weftd := strings.Join(c.WeftdFlags, " ")
	fs.StringVar(&c.Dir, "dir", c.Dir, "state directory of the run's labs (removed at the end)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "prefix of every network namespace the run creates")
	fs.StringVar(&c.BinDir, "bin-dir", c.BinDir, "directory holding weftd, weftctl, weft and portmap")
	fs.StringVar(&c.Conflist, "conflist", c.Conflist, "CNI conflist template")
	fs.StringVar(&c.Out, "out", c.Out, "JSON results file")
	fs.StringVar(&sections, "sections", sections, "sections to run: "+strings.Join(AllSections, ","))
	fs.IntVar(&c.Runs, "runs", c.Runs, "interleaved iperf3 runs per path")
	fs.DurationVar(&c.IperfTime, "iperf-time", c.IperfTime, "measured time of each iperf3 run (plus 1s omitted)")
	fs.StringVar(&variants, "variants", variants, "throughput variants to try: "+strings.Join(allVariants, ",")+" (empty: none)")
	fs.StringVar(&meshNodes, "mesh-nodes", meshNodes, "fabric sizes for the cold-start mesh time")
	fs.IntVar(&c.MeshRuns, "mesh-runs", c.MeshRuns, "cold starts per fabric size")
	fs.StringVar(&joins, "joins", joins, "timed joins per fabric size, size:count,...")
	fs.StringVar(&peers, "peers", peers, "synthetic peer counts for the resource windows")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "wait before each resource window")
	fs.DurationVar(&c.Window, "window", c.Window, "resource window with synthetic peers")
	fs.DurationVar(&c.IdleWindow, "idle-window", c.IdleWindow, "resource window of the idle fabric")
	fs.IntVar(&c.CNIOps, "cni-ops", c.CNIOps, "timed CNI ADDs (and DELs)")
	fs.IntVar(&c.CNIBatch, "cni-batch", c.CNIBatch, "pods attached before they are detached again")
	fs.StringVar(&weftd, "weftd-flags", weftd, "space-separated flags appended to every weftd (e.g. \"-probe-interval=5s -rules-interval=1m\")")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	c.Sections, c.Variants, c.WeftdFlags = flagenv.SplitList(sections), flagenv.SplitList(variants), strings.Fields(weftd)
	var err error
	if c.MeshNodes, err = parseInts("mesh-nodes", meshNodes); err != nil {
		return nil, err
	}
	if c.Peers, err = parseInts("peers", peers); err != nil {
		return nil, err
	}
	if c.Joins, err = parseJoins(joins); err != nil {
		return nil, err
	}
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return nil, fmt.Errorf("%w: -dir=%q: %w", ErrUsage, c.Dir, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range flagenv.SplitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%w: -%s=%q: %q is not a number", ErrUsage, flagName, s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseJoins(s string) (map[int]int, error) {
	out := map[int]int{}
	for _, f := range flagenv.SplitList(s) {
		size, count, ok := strings.Cut(f, ":")
		n, err1 := strconv.Atoi(size)
		j, err2 := strconv.Atoi(count)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: -joins=%q: %q is not size:count", ErrUsage, s, f)
		}
		out[n] = j
	}
	return out, nil
}
