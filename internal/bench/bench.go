// Package bench measures a whole weft fabric on one machine, in network namespaces built by the
// lab (internal/lab): cross-node and same-node pod throughput with iperf3 against the underlay and
// a hand-built kernel VXLAN path, cold-start mesh time and join latency timed by netlink route
// notifications, weftd's memory and CPU idle and with synthetic peers, and CNI ADD/DEL latency
// through libcni. `make bench` runs it through bench/cmd/weft-bench and gets a table and a JSON
// file; the figures are reported, not asserted.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
)

// runner is one run in progress.
type runner struct {
	cfg *Config
	log *slog.Logger
	reg *registry
	fab *fabric
}

// fabric is the two-node lab that throughput and CNI share.
type fabric struct {
	lab   *lab.Lab
	nodes []*lab.Node
}

// Run runs the configured sections, writes cfg.Out and the table, and removes everything it
// created, even when a section fails or ctx ends. A failed section is reported in the results and
// in the returned error; the other sections still run.
func Run(ctx context.Context, cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := nsutil.CheckRoot(); err != nil {
		return err
	}
	c := *cfg
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Table == nil {
		c.Table = io.Discard
	}
	var err error
	if c.BinDir, err = filepath.Abs(c.BinDir); err != nil {
		return err
	}
	if c.Conflist, err = filepath.Abs(c.Conflist); err != nil {
		return err
	}
	if err := preflight(&c); err != nil {
		return err
	}
	unlock, err := lock(c.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := recoverRun(c.Dir); err != nil {
		return fmt.Errorf("removing a previous run's leftovers: %w", err)
	}
	_, statErr := os.Stat(c.Dir)
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	reg, err := newRegistry(c.Dir, errors.Is(statErr, os.ErrNotExist))
	if err != nil {
		return err
	}
	r := &runner{cfg: &c, log: c.Log.With("component", "bench"), reg: reg}
	res := &Results{Machine: machine(), Settings: settings(&c)}
	start := time.Now()
	runErr := r.sections(ctx, res)
	cleanErr := r.reg.close()
	if cleanErr != nil {
		res.Errors = append(res.Errors, "cleanup: "+cleanErr.Error())
	}
	res.Machine.Seconds = round(time.Since(start).Seconds(), 1)
	res.Machine.LoadEnd = loadavg()
	res.Goals = goals(res)
	if err := writeJSON(c.Out, res); err != nil {
		return errors.Join(runErr, cleanErr, err)
	}
	WriteTable(c.Table, res)
	fmt.Fprintf(c.Table, "\nResults: %s\n", c.Out)
	return errors.Join(runErr, cleanErr)
}

// preflight checks the tools the sections need, dropping the variants that need a missing one.
func preflight(c *Config) error {
	for _, bin := range []string{"weftd", "weftctl", "weft", "portmap"} {
		if _, err := os.Stat(filepath.Join(c.BinDir, bin)); err != nil {
			return fmt.Errorf("%w: BinDir=%s: %s is missing (make build)", ErrUsage, c.BinDir, bin)
		}
	}
	if _, err := os.Stat(c.Conflist); err != nil {
		return fmt.Errorf("%w: Conflist=%s: %w", ErrUsage, c.Conflist, err)
	}
	if c.has(SectionThroughput) {
		if _, err := exec.LookPath("iperf3"); err != nil {
			return fmt.Errorf("the throughput section needs iperf3 (apt-get install -y iperf3; scripts/bench.sh does): %w", err)
		}
		if _, err := exec.LookPath("ethtool"); err != nil {
			c.Log.Warn("ethtool is missing: GRO variants and offload listing skipped (apt-get install -y ethtool)")
			c.Variants = slices.DeleteFunc(c.Variants, func(v string) bool { return strings.Contains(v, "gro") })
		}
	}
	return nil
}

// sections runs each configured section, recording failures and carrying on.
func (r *runner) sections(ctx context.Context, res *Results) error {
	var errs []error
	fail := func(section string, err error) {
		if err == nil {
			return
		}
		r.log.Error("section failed", "section", section, "err", err)
		res.Errors = append(res.Errors, section+": "+err.Error())
		errs = append(errs, fmt.Errorf("%s: %w", section, err))
	}
	if r.cfg.has(SectionThroughput) && ctx.Err() == nil {
		var err error
		res.Throughput, err = r.throughput(ctx)
		fail(SectionThroughput, err)
	}
	if r.cfg.has(SectionCNI) && ctx.Err() == nil {
		var err error
		res.CNI, err = r.cni(ctx)
		fail(SectionCNI, err)
	}
	if r.fab != nil {
		fail("fabric", r.reg.downLab(r.fab.lab))
		r.fab = nil
	}
	if r.cfg.has(SectionMesh) {
		for _, n := range r.cfg.MeshNodes {
			if ctx.Err() != nil {
				break
			}
			m, j, err := r.meshSize(ctx, n)
			if m != nil {
				res.Mesh = append(res.Mesh, *m)
			}
			if j != nil {
				res.Joins = append(res.Joins, *j)
			}
			fail(fmt.Sprintf("%s N=%d", SectionMesh, n), err)
		}
	}
	if r.cfg.has(SectionResources) && ctx.Err() == nil {
		rr, err := r.resources(ctx)
		res.Resources = rr
		fail(SectionResources, err)
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// newLab starts a lab named name under the run's directory and prefix, recorded for cleanup.
func (r *runner) newLab(ctx context.Context, name string) (*lab.Lab, error) {
	l, err := lab.Up(ctx, lab.Options{
		Dir: filepath.Join(r.cfg.Dir, name), Prefix: r.cfg.Prefix + name + "-",
		BinDir: r.cfg.BinDir, Conflist: r.cfg.Conflist,
	})
	if err != nil {
		return nil, err
	}
	r.reg.addLab(l)
	return l, nil
}

// addNodes adds n nodes to l and waits until all are ready.
func (r *runner) addNodes(ctx context.Context, l *lab.Lab, n int) ([]*lab.Node, error) {
	var nodes []*lab.Node
	for range n {
		node, err := l.AddNode(ctx, r.cfg.WeftdFlags...)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		if err := l.WaitReady(ctx, node, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// fabric returns the two-node lab, starting it on first use.
func (r *runner) fabric(ctx context.Context) (*fabric, error) {
	if r.fab != nil {
		return r.fab, nil
	}
	r.log.Info("starting a two-node fabric")
	l, err := r.newLab(ctx, "t")
	if err != nil {
		return nil, err
	}
	nodes, err := r.addNodes(ctx, l, 2)
	if err != nil {
		return nil, err
	}
	r.fab = &fabric{lab: l, nodes: nodes}
	return r.fab, nil
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Truncate(time.Second), LoadStart: loadavg()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Command = strings.Join(os.Args, " ")
	return m
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func settings(c *Config) Settings {
	return Settings{
		Sections: c.Sections, Runs: c.Runs, IperfS: Num(c.IperfTime.Seconds()), Variants: c.Variants,
		MeshNodes: c.MeshNodes, MeshRuns: c.MeshRuns, Joins: c.Joins, Peers: c.Peers,
		SettleS: Num(c.Settle.Seconds()), WindowS: Num(c.Window.Seconds()), IdleS: Num(c.IdleWindow.Seconds()),
		CNIOps: c.CNIOps, WeftdFlags: c.WeftdFlags,
	}
}

func writeJSON(path string, res *Results) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
