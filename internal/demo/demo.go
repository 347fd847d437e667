// Package demo is weft-demo: a multi-node weft fabric on this machine (internal/lab), shown with
// its nodes, pods, a ping matrix and a throughput figure. `make demo` and `weftctl demo` run it.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/weft-net/weft/etc"
	"github.com/weft-net/weft/internal/flagenv"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

const defaultDemoDir = "/run/weft-demo"

type demoFlags struct {
	nodes, pods int
	podNetwork  string
	dir, binDir string
	keep        bool
	duration    time.Duration
}

func (f *demoFlags) register(fs *flag.FlagSet, withTopology bool) {
	fs.StringVar(&f.dir, "dir", defaultDemoDir, "directory for the demo's state, files and logs")
	if !withTopology {
		return
	}
	fs.IntVar(&f.nodes, "nodes", 3, "number of nodes")
	fs.IntVar(&f.pods, "pods", 2, "pods per node")
	fs.StringVar(&f.podNetwork, "pod-network", "10.244.0.0/16", "cluster pod network")
	fs.StringVar(&f.binDir, "bin-dir", "", "directory holding weftd, weft and portmap (default: weft-demo's own)")
	fs.BoolVar(&f.keep, "keep", false, "leave the fabric running on exit (take it down with `weftctl demo down`)")
	fs.DurationVar(&f.duration, "duration", 0, "run this long, then tear down (default: until Ctrl-C)")
}

// ErrUsage marks a command line weft-demo cannot run; its main exits with code 2 on it.
var ErrUsage = errors.New("usage")

// Env is what the demo runs with.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the WEFT_* variables.
	Getenv func(string) string
}

// Main runs weft-demo as a program: Ctrl-C, SIGTERM and SIGHUP end it (tearing the fabric down),
// and a closed stdout or stderr does not (SIGPIPE is ignored: writes fail instead).
func Main(ctx context.Context, env *Env, args []string) error {
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return Run(ctx, env, args)
}

// Run runs weft-demo with args (without the program name): [run|up|status|down|etcd] [flags].
func Run(ctx context.Context, env *Env, args []string) error {
	sub := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub == "etcd" {
		return runDemoEtcd(ctx, env, args)
	}
	var f demoFlags
	fs := flag.NewFlagSet("weft-demo "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	switch sub {
	case "run", "up":
		f.register(fs, true)
	case "status", "down":
		f.register(fs, false)
	default:
		return fmt.Errorf("%w: unknown demo command %q (want up, status or down)", ErrUsage, sub)
	}
	if err := flagenv.Parse(fs, args, env.Getenv); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err := nsutil.CheckRoot(); err != nil {
		return fmt.Errorf("weft-demo %w (sudo make demo)", err)
	}
	switch sub {
	case "status":
		l, err := lab.Load(f.dir, env.Stdout)
		if err != nil {
			return err
		}
		return showDemo(ctx, env, l)
	case "down":
		return demoDown(env, f.dir)
	}
	l, err := demoUp(ctx, env, &f)
	if err != nil {
		return err
	}
	if sub == "up" {
		fmt.Fprintf(env.Stdout, "\nThe fabric stays up: `weftctl demo status` shows it, `weftctl demo down` removes it.\n")
		return nil
	}
	if f.keep {
		fmt.Fprintf(env.Stdout, "\n-keep: the fabric stays up; `weftctl demo down` removes it.\n")
		return nil
	}
	wait := ctx
	if f.duration > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
		fmt.Fprintf(env.Stdout, "\nRunning for %v, then tearing down (Ctrl-C to stop sooner).\n", f.duration)
	} else {
		fmt.Fprintf(env.Stdout, "\nRunning. Try: ip netns exec %sn1p1 ping %s — Ctrl-C tears everything down.\n", l.State().Prefix, l.State().Pods[len(l.State().Pods)-1].IP)
	}
	<-wait.Done()
	fmt.Fprintln(env.Stdout, "\nTearing down...")
	if err := l.Down(); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "Done: every namespace, link, process and file of the demo is gone.")
	return nil
}

// demoDown takes down the demo recorded in dir: exactly what its record says it created, and
// nothing without a record.
func demoDown(env *Env, dir string) error {
	l, err := lab.Load(dir, env.Stdout)
	if errors.Is(err, lab.ErrNoLab) {
		fmt.Fprintf(env.Stdout, "No demo is recorded in %s (%v): nothing removed.\n", dir, err)
		return nil
	}
	if err != nil {
		return err
	}
	if err := l.Down(); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "The demo is down: every namespace, link, process and file it created is gone.")
	return nil
}

func demoUp(ctx context.Context, env *Env, f *demoFlags) (l *lab.Lab, err error) {
	if f.nodes < 1 || f.nodes > 200 {
		return nil, fmt.Errorf("%w: -nodes=%d: want 1..200", ErrUsage, f.nodes)
	}
	if f.pods < 0 || f.pods > 50 {
		return nil, fmt.Errorf("%w: -pods=%d: want 0..50", ErrUsage, f.pods)
	}
	podNet, err := netip.ParsePrefix(f.podNetwork)
	if err != nil {
		return nil, fmt.Errorf("%w: -pod-network=%q: %w", ErrUsage, f.podNetwork, err)
	}
	if f.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		f.binDir = filepath.Dir(exe)
	}
	for _, bin := range []string{"weftd", "weft", "portmap", "weft-demo"} {
		if _, err := os.Stat(filepath.Join(f.binDir, bin)); err != nil {
			return nil, fmt.Errorf("%s is missing from %s: run `make build` (make demo does)", bin, f.binDir)
		}
	}
	fmt.Fprintf(env.Stdout, "weft demo: %d nodes, %d pods per node, pod network %s\n", f.nodes, f.pods, podNet)
	l, err = lab.Up(ctx, lab.Options{Dir: f.dir, BinDir: f.binDir, ConflistData: etc.Conflist, PodNetwork: podNet, Log: env.Stdout})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(env.Stdout, "\nThe demo failed (%v); logs are in %s. Tearing down.\n", err, f.dir)
			err = errors.Join(err, l.Down())
		}
	}()
	var nodes []*lab.Node
	for range f.nodes {
		n, err := l.AddNode(ctx)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	start := time.Now()
	for _, n := range nodes {
		if err := l.WaitReady(ctx, n, 60*time.Second); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(env.Stdout, "• all %d nodes ready (%v)\n", len(nodes), time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		for range f.pods {
			p, err := l.AddPod(ctx, n)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(env.Stdout, "• pod %s on %s: %s (CNI ADD through libcni)\n", p.Name, n.Name, p.IP)
		}
	}
	return l, showDemo(ctx, env, l)
}

// showDemo prints the node and pod tables, the ping matrix and a throughput figure.
func showDemo(ctx context.Context, env *Env, l *lab.Lab) error {
	st := l.State()
	leases, err := demoLeases(ctx, l)
	if err != nil {
		fmt.Fprintf(env.Stdout, "(etcd not reachable for the lease view: %v)\n", err)
	}
	fmt.Fprintln(env.Stdout)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSUBNET\tPUBLIC-IP\tVTEP-MAC\tREADY")
	for _, n := range st.Nodes {
		sn, mac, ready := "-", "-", "no"
		if e, err := subnet.ReadEnvFile(filepath.Join(n.Dir, "subnet.env")); err == nil {
			sn = e.Subnet.String()
			if e.Ready {
				ready = "yes"
			}
			if ls, ok := leases[e.Subnet]; ok {
				mac = ls.Attrs.VtepMAC.String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, sn, n.IP, mac, ready)
	}
	tw.Flush()
	fmt.Fprintln(env.Stdout)
	tw = tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tIP\tNETNS")
	for _, p := range st.Pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Node, p.IP, p.Netns)
	}
	tw.Flush()
	if len(st.Pods) < 2 {
		return nil
	}
	m, err := l.PingMatrix(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "\nPod-to-pod ping matrix (row pings column):")
	tw = tabwriter.NewWriter(env.Stdout, 0, 4, 1, ' ', 0)
	fmt.Fprint(tw, "\t")
	for i := range st.Pods {
		fmt.Fprintf(tw, "%d\t", i+1)
	}
	fmt.Fprintln(tw)
	failed := 0
	for i, p := range st.Pods {
		fmt.Fprintf(tw, "%d %s\t", i+1, p.Name)
		for j := range st.Pods {
			switch {
			case i == j:
				fmt.Fprint(tw, "·\t")
			case m[i][j] == nil:
				fmt.Fprint(tw, "✓\t")
			default:
				fmt.Fprint(tw, "✗\t")
				failed++
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	pairs := len(st.Pods) * (len(st.Pods) - 1)
	fmt.Fprintf(env.Stdout, "%d/%d pairs reachable\n", pairs-failed, pairs)
	if a, b, ok := crossNodePair(st.Pods); ok {
		bps, err := l.PodThroughput(a, b, 3*time.Second)
		if err != nil {
			fmt.Fprintf(env.Stdout, "throughput %s → %s: %v\n", a.Name, b.Name, err)
		} else {
			fmt.Fprintf(env.Stdout, "cross-node TCP throughput %s → %s over VXLAN: %.2f Gbit/s\n", a.Name, b.Name, bps/1e9)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d pod pairs cannot reach each other", failed, pairs)
	}
	return nil
}

func crossNodePair(pods []*lab.Pod) (*lab.Pod, *lab.Pod, bool) {
	for _, a := range pods {
		for _, b := range pods {
			if a.Node != b.Node {
				return a, b, true
			}
		}
	}
	return nil, nil, false
}

// demoLeases reads the leases from the demo's etcd.
func demoLeases(ctx context.Context, l *lab.Lab) (map[netip.Prefix]subnet.Lease, error) {
	cli, err := l.EtcdClient()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	m, err := weftetcd.New(cli, weftetcd.Options{Prefix: weftetcd.DefaultPrefix})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	set, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Prefix]subnet.Lease)
	for _, ls := range set.Leases {
		out[ls.Subnet] = ls
	}
	return out, nil
}

func runDemoEtcd(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("weft-demo etcd", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	listen := fs.String("listen", "", "client listen address ip:port")
	dataDir := fs.String("data-dir", "", "etcd data directory")
	prefix := fs.String("prefix", weftetcd.DefaultPrefix, "etcd prefix of the network config")
	netConf := fs.String("network-config", "", "network config JSON put at <prefix>/config")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if *listen == "" || *dataDir == "" || *netConf == "" {
		return fmt.Errorf("%w: -listen, -data-dir and -network-config are required", ErrUsage)
	}
	return lab.ServeEtcd(ctx, *listen, *dataDir, *prefix, *netConf)
}
