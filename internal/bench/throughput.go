package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/subnet"
)

// Throughput paths.
const (
	PathUnderlay     = "underlay"
	PathHandBuilt    = "hand-built"
	PathWeft         = "weft"
	PathSameNode     = "same-node"
	PathHandUnderlay = "hand-underlay"
)

// path is one iperf3 client → server pair.
type path struct {
	name, desc string
	from       ns.NetNS
	to         netip.Addr
	// setup, when set, runs before each run of the path (to put the fabric in the path's state).
	setup func() error
}

// throughput measures the default datapaths, then each variant, and returns every set.
func (r *runner) throughput(ctx context.Context) (*Throughput, error) {
	f, err := r.fabric(ctx)
	if err != nil {
		return nil, err
	}
	tb, err := r.throughputBench(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &Throughput{Runs: r.cfg.Runs, Seconds: Num(r.cfg.IperfTime.Seconds())}
	if out.Offloads, err = offloads(tb.nss[1], tb.nss[3]); err != nil {
		r.log.Warn("reading offload features", "err", err)
	}
	set, err := r.measure(ctx, "default", "weft's defaults: underlay MTU 1500 (overlay 1450), veth GRO off, the kernel's default offloads", tb.paths)
	out.Sets = append(out.Sets, set)
	if err != nil {
		return out, err
	}
	for _, v := range allVariants {
		if !slices.Contains(r.cfg.Variants, v) {
			continue
		}
		desc, paths, err := r.variant(ctx, v, f, tb)
		if err == nil {
			for _, restore := range []func() error{tb.gro(false), tb.noTrack(false)} {
				err = errors.Join(err, restore())
			}
		}
		if err != nil {
			return out, fmt.Errorf("variant %s: %w", v, err)
		}
		set, err := r.measure(ctx, v, desc, paths)
		out.Sets = append(out.Sets, set)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// throughputBench is what the throughput section measures with: weft's pods and the hand-built
// path, their namespaces (ul, node1, node2, pod n1p1, pod n1p2, pod n2p1) and the default paths.
type throughputBench struct {
	f     *fabric
	hp    *handPath
	nss   []ns.NetNS
	paths []path
}

// throughputBench attaches the pods, builds the hand-built path and starts the iperf3 servers.
func (r *runner) throughputBench(ctx context.Context, f *fabric) (*throughputBench, error) {
	l, n1, n2 := f.lab, f.nodes[0], f.nodes[1]
	var pods [3]*lab.Pod
	var err error
	for i, node := range []*lab.Node{n1, n1, n2} {
		if pods[i], err = addPod(ctx, l, node); err != nil {
			return nil, err
		}
	}
	hp, err := buildHandPath(r.reg, r.cfg.Prefix+"h-")
	if err != nil {
		return nil, err
	}
	nss, err := openAll(l, l.UnderlayNetns(), n1.Netns, n2.Netns, pods[0].Netns, pods[1].Netns, pods[2].Netns)
	if err != nil {
		return nil, err
	}
	servers := []struct {
		name string
		n    ns.NetNS
		at   netip.Addr
	}{
		{"node2", nss[2], n2.IP},
		{"pod-n2", nss[5], pods[2].IP},
		{"pod-n1", nss[4], pods[1].IP},
		{"hand-node2", hp.ns[hp.nodes[1]], hp.nodeIP[1]},
		{"hand-pod2", hp.ns[hp.pods[1]], hp.podIP[1]},
	}
	for _, s := range servers {
		if _, err := startIperfServer(ctx, r.reg, s.n, s.at, r.cfg.Dir, s.name); err != nil {
			return nil, err
		}
	}
	return &throughputBench{f: f, hp: hp, nss: nss, paths: []path{
		{name: PathUnderlay, desc: "node → node over the underlay bridge (weft's node namespaces)", from: nss[1], to: n2.IP},
		{name: PathHandBuilt, desc: "pod → pod across nodes through a hand-built VXLAN + bridge + veth path, no weft", from: hp.ns[hp.pods[0]], to: hp.podIP[1]},
		{name: PathWeft, desc: "pod → pod across nodes through weft", from: nss[3], to: pods[2].IP},
		{name: PathSameNode, desc: "pod → pod on one node through weft's bridge", from: nss[3], to: pods[1].IP},
		{name: PathHandUnderlay, desc: "node → node over the hand-built path's underlay", from: hp.ns[hp.nodes[0]], to: hp.nodeIP[1]},
	}}, nil
}

// gro returns the switch of GRO on every veth of both fabrics.
func (tb *throughputBench) gro(on bool) func() error {
	return func() error {
		for _, n := range append(slices.Clone(tb.nss), tb.hp.namespaces()...) {
			if err := setGRO(n, on); err != nil {
				return err
			}
		}
		return nil
	}
}

// noTrack returns the switch of the conntrack exemption on weft's nodes.
func (tb *throughputBench) noTrack(on bool) func() error {
	return func() error { return noTrack(tb.f, on) }
}

// variant returns the description and paths of variant v.
func (r *runner) variant(ctx context.Context, v string, f *fabric, tb *throughputBench) (string, []path, error) {
	cross, handUnderlay := tb.paths[:3], tb.paths[4]
	switch v {
	case VariantGRO:
		return "GRO on every veth (ethtool -K <veth> gro on) against off, switched before each run; MTU 1500",
			toggled(cross, suffixGRO, tb.gro(false), tb.gro(true)), nil
	case VariantNoTrack:
		return "weft as shipped against weft whose nodes exempt pod↔pod and VXLAN packets from conntrack (raw-table NOTRACK rules), switched before each run; GRO off, MTU 1500",
			append(slices.Clone(cross[:2]), toggled(cross[2:], suffixNoTrack, tb.noTrack(false), tb.noTrack(true))...), nil
	case VariantMTU9000:
		jumbo, err := r.jumbo(ctx, f, tb.hp, cross)
		if err != nil {
			return "", nil, err
		}
		at := func(mtu int) func() error { return func() error { return tb.hp.setMTU(mtu) } }
		hu, hb := handUnderlay, jumbo[1]
		hu.setup, hb.setup = at(9000), at(9000)
		hu15, hb15 := hu, hb
		hu15.name, hu15.desc, hu15.setup = hu.name+suffix1500, hu.desc+" at MTU 1500", at(1500)
		hb15.name, hb15.desc, hb15.setup = hb.name+suffix1500, hb.desc+" at MTU 1500", at(1500)
		return "underlays at MTU 9000 (overlay 8950; weft's nodes restarted, new pods attached) against the hand-built path at 1500, switched before each run; GRO off",
			[]path{hu, hb, jumbo[2], hu15, hb15}, nil
	}
	return "", nil, fmt.Errorf("unknown variant %q", v)
}

// Suffixes of the paths measured in a variant's other state.
const (
	suffixGRO     = "+gro"
	suffixNoTrack = "-notrack"
	suffix1500    = "@1500"
)

// toggled returns each path twice, interleaved: as is, with off run before it, and under name
// +suffix with on run before it, so that both states are measured under the same load.
func toggled(ps []path, suffix string, off, on func() error) []path {
	var out []path
	for _, p := range ps {
		a, b := p, p
		a.setup = off
		b.name, b.desc, b.setup = p.name+suffix, p.desc+" ("+strings.TrimLeft(suffix, "+-@")+")", on
		out = append(out, a, b)
	}
	return out
}

// noTrackRules exempt traffic between pods and weft's VXLAN packets from conntrack; weft's
// masquerade rules only need conntrack for traffic leaving the pod network.
func noTrackRules(network string) [][]string {
	return [][]string{
		{"PREROUTING", "-s", network, "-d", network, "-j", "NOTRACK"},
		{"OUTPUT", "-s", network, "-d", network, "-j", "NOTRACK"},
		{"PREROUTING", "-p", "udp", "--dport", "8472", "-j", "NOTRACK"},
		{"OUTPUT", "-p", "udp", "--dport", "8472", "-j", "NOTRACK"},
	}
}

// noTrack makes the raw table of the fabric's nodes hold noTrackRules, or not; it is idempotent.
func noTrack(f *fabric, on bool) error {
	for _, node := range f.nodes {
		n, err := f.lab.NodeNS(node)
		if err != nil {
			return err
		}
		for _, rule := range noTrackRules(f.lab.State().PodNetwork.String()) {
			has := runIn(n, "iptables", append([]string{"-w", "-t", "raw", "-C"}, rule...)...) == nil
			if has == on {
				continue
			}
			op := map[bool]string{true: "-A", false: "-D"}[on]
			if err := runIn(n, "iptables", append([]string{"-w", "-t", "raw", op}, rule...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitEnvMTU waits until node's weftd is ready with the given overlay MTU in its subnet file.
func waitEnvMTU(ctx context.Context, l *lab.Lab, node *lab.Node, mtu int) error {
	deadline := time.Now().Add(time.Minute)
	for {
		e, err := l.Env(node)
		if err == nil && e.Ready && e.MTU == mtu {
			return nil
		}
		if time.Now().After(deadline) {
			got := "no subnet file"
			if err == nil {
				got = fmt.Sprintf("MTU %d, ready %t", e.MTU, e.Ready)
			}
			return fmt.Errorf("%w: %s: weftd's subnet file says %s, want MTU %d and ready", ErrTimeout, node.Name, got, mtu)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// addPod attaches a pod through the lab and sets its loopback up, as a container runtime does.
func addPod(ctx context.Context, l *lab.Lab, node *lab.Node) (*lab.Pod, error) {
	p, err := l.AddPod(ctx, node)
	if err != nil {
		return nil, err
	}
	n, err := l.NS(p.Netns)
	if err != nil {
		return nil, err
	}
	return p, nsutil.WithHandle(n, func(h *netlink.Handle) error { return setUp(h, "lo") })
}

// openAll opens the lab's namespaces of the given names.
func openAll(l *lab.Lab, names ...string) ([]ns.NetNS, error) {
	out := make([]ns.NetNS, len(names))
	for i, name := range names {
		n, err := l.NS(name)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// jumbo raises both underlays to MTU 9000, restarts weftd so that it derives the overlay MTU from
// the underlay again, and attaches a new pod on each node (CNI sets the new MTU); it returns the
// cross-node paths with weft's path between the new pods.
func (r *runner) jumbo(ctx context.Context, f *fabric, hp *handPath, cross []path) ([]path, error) {
	const mtu = 9000
	r.log.Info("raising both underlays to MTU 9000 and restarting weftd")
	if err := hp.setMTU(mtu); err != nil {
		return nil, err
	}
	l := f.lab
	ul, err := l.NS(l.UnderlayNetns())
	if err != nil {
		return nil, err
	}
	var links []string
	if err := nsutil.WithHandle(ul, func(h *netlink.Handle) error {
		all, err := h.LinkList()
		for _, link := range all {
			if t := link.Type(); t == "veth" || t == "bridge" {
				links = append(links, link.Attrs().Name)
			}
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := setMTU(ul, mtu, links...); err != nil {
		return nil, err
	}
	var pods []ns.NetNS
	var ips []netip.Addr
	for _, node := range f.nodes {
		n, err := l.NodeNS(node)
		if err != nil {
			return nil, err
		}
		if err := setMTU(n, mtu, "eth0"); err != nil {
			return nil, err
		}
		if err := l.StopWeftd(node, syscall.SIGTERM); err != nil {
			return nil, err
		}
		if err := l.StartWeftd(node); err != nil {
			return nil, err
		}
		if err := waitEnvMTU(ctx, l, node, mtu-subnet.VXLANOverheadIPv4); err != nil {
			return nil, err
		}
		p, err := addPod(ctx, l, node)
		if err != nil {
			return nil, err
		}
		pn, err := l.NS(p.Netns)
		if err != nil {
			return nil, err
		}
		pods, ips = append(pods, pn), append(ips, p.IP)
	}
	if _, err := startIperfServer(ctx, r.reg, pods[1], ips[1], r.cfg.Dir, "pod-n2-jumbo"); err != nil {
		return nil, err
	}
	out := append([]path(nil), cross...)
	out[2].from, out[2].to = pods[0], ips[1]
	return out, nil
}

// measure runs every path r.cfg.Runs times, interleaved (each round starts one path later), and
// summarises the set. A run that fails is retried once, then counted as missing.
func (r *runner) measure(ctx context.Context, variant, desc string, paths []path) (ThroughputSet, error) {
	samples := make([][]float64, len(paths))
	r.log.Info("throughput", "variant", variant, "paths", len(paths), "runs", r.cfg.Runs)
	for round := range r.cfg.Runs {
		for k := range paths {
			i := (k + round) % len(paths)
			p := paths[i]
			if p.setup != nil {
				if err := p.setup(); err != nil {
					return ThroughputSet{}, fmt.Errorf("%s: %w", p.name, err)
				}
			}
			bps, err := iperfClient(ctx, p.from, p.to, r.cfg.IperfTime)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("iperf3 run failed, retrying once", "path", p.name, "err", err)
				bps, err = iperfClient(ctx, p.from, p.to, r.cfg.IperfTime)
			}
			if ctx.Err() != nil {
				return ThroughputSet{}, ctx.Err()
			}
			if err != nil {
				r.log.Warn("iperf3 run failed", "path", p.name, "err", err)
				continue
			}
			samples[i] = append(samples[i], bps/1e9)
			r.log.Debug("iperf3", "variant", variant, "path", p.name, "round", round+1, "gbps", round3(bps/1e9))
		}
	}
	return summarizeSet(variant, desc, paths, samples), nil
}

func round3(x float64) float64 { return float64(round(x, 3)) }

// summarizeSet computes medians, best runs and the ratios between paths.
func summarizeSet(variant, desc string, paths []path, gbps [][]float64) ThroughputSet {
	set := ThroughputSet{Variant: variant, Desc: desc, Ratios: map[string]Ratios{}}
	med, best := map[string]float64{}, map[string]float64{}
	byName := map[string][]float64{}
	for i, p := range paths {
		pr := PathResult{Name: p.name, Desc: p.desc, MedianGbps: round(Median(gbps[i]), 3), BestGbps: round(Percentile(gbps[i], 100), 3)}
		for _, g := range gbps[i] {
			pr.SamplesGbps = append(pr.SamplesGbps, round(g, 3))
		}
		set.Paths = append(set.Paths, pr)
		med[p.name], best[p.name], byName[p.name] = Median(gbps[i]), Percentile(gbps[i], 100), gbps[i]
	}
	pairs := [][2]string{
		{PathWeft, PathHandBuilt}, {PathWeft, PathUnderlay}, {PathHandBuilt, PathHandUnderlay},
		{PathHandBuilt, PathUnderlay}, {PathSameNode, PathUnderlay}, {PathHandUnderlay, PathUnderlay},
		{PathWeft + suffixGRO, PathWeft}, {PathHandBuilt + suffixGRO, PathHandBuilt},
		{PathUnderlay + suffixGRO, PathUnderlay}, {PathWeft + suffixGRO, PathHandBuilt + suffixGRO},
		{PathWeft + suffixNoTrack, PathWeft}, {PathWeft + suffixNoTrack, PathHandBuilt},
		{PathHandBuilt, PathHandBuilt + suffix1500}, {PathHandUnderlay, PathHandUnderlay + suffix1500},
	}
	for _, pair := range pairs {
		a, aok := byName[pair[0]]
		b, bok := byName[pair[1]]
		if !aok || !bok {
			continue
		}
		var per []float64
		if len(a) == len(b) {
			for i := range a {
				per = append(per, Ratio(a[i], b[i]))
			}
		}
		set.Ratios[pair[0]+"/"+pair[1]] = Ratios{
			OfMedians: round(Ratio(med[pair[0]], med[pair[1]]), 3), MedianPerRound: round(Median(per), 3),
			OfBest: round(Ratio(best[pair[0]], best[pair[1]]), 3),
		}
	}
	return set
}

// offloads lists the top-level ethtool offload features of a node's VXLAN device and underlay
// link and of a pod's eth0, as "feature: on|off".
func offloads(node, pod ns.NetNS) (map[string][]string, error) {
	out := map[string][]string{}
	read := func(key, link string, n ns.NetNS) error {
		cmd := exec.Command("ethtool", "-k", link)
		var buf bytes.Buffer
		cmd.Stdout = &buf
		if err := nsutil.Start(n, cmd); err != nil {
			return err
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("ethtool -k %s: %w", link, err)
		}
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "\t") || !strings.Contains(line, ": ") || strings.Contains(line, "[fixed]") {
				continue
			}
			if strings.Contains(line, "offload") || strings.Contains(line, "checksum") || strings.Contains(line, "gro") || strings.Contains(line, "scatter") {
				out[key] = append(out[key], line)
			}
		}
		return sc.Err()
	}
	var errs []error
	for _, x := range []struct {
		key, link string
		n         ns.NetNS
	}{{"node weft.1", "weft.1", node}, {"node eth0", "eth0", node}, {"pod eth0", "eth0", pod}} {
		errs = append(errs, read(x.key, x.link, x.n))
	}
	return out, errors.Join(errs...)
}
