package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	weftetcd "github.com/weft-net/weft/subnet/etcd"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
)

// ErrProc marks a /proc file of weftd that could not be read.
var ErrProc = errors.New("proc")

const (
	// resourceNodes is the size of the fabric whose weftds are measured.
	resourceNodes = 3
	// sampleEvery is the sampling period within a window.
	sampleEvery = 5 * time.Second
	// userHZ is the unit of utime and stime in /proc/<pid>/stat.
	userHZ = 100
	// resourceNetConfig gives 1,024 /26 subnets, room for 1,000 synthetic peers.
	resourceNetConfig = `{"Network":"10.244.0.0/16","SubnetLen":26,"Backend":{"Type":"vxlan"}}`
)

// procSample is one reading of a process.
type procSample struct {
	at time.Time
	// cpuTicks is the process's own CPU time, childTicks that of the children it waited for
	// (weftd runs iptables), both in 1/userHZ s.
	cpuTicks   uint64
	childTicks uint64
	rssKiB     uint64
	anonKiB    uint64
}

// readProc reads CPU time and resident memory of pid.
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrProc, err)
	}
	if s.cpuTicks, s.childTicks, err = parseStatCPU(stat); err != nil {
		return s, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrProc, err)
	}
	kv := parseStatus(status)
	s.rssKiB, s.anonKiB = kv["VmRSS"], kv["RssAnon"]
	if s.rssKiB == 0 {
		return s, fmt.Errorf("%w: /proc/%d/status has no VmRSS", ErrProc, pid)
	}
	return s, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15) and cutime+cstime (16 and 17) of a
// /proc/<pid>/stat line; the command name in parentheses may hold spaces.
func parseStatCPU(stat []byte) (own, children uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%w: stat has no command name", ErrProc)
	}
	// f[0] is field 3 (state), so field k is f[k-3].
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("%w: stat has %d fields after the command name, want at least 15", ErrProc, len(f))
	}
	var v [4]uint64
	for k := range v {
		n, err := strconv.ParseInt(f[11+k], 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("%w: stat field %d %q: not a CPU time", ErrProc, 14+k, f[11+k])
		}
		v[k] = uint64(n)
	}
	return v[0] + v[1], v[2] + v[3], nil
}

// parseStatus returns the "kB" fields of /proc/<pid>/status in KiB.
func parseStatus(status []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// resources measures weftd idle on a small fabric, then with each count of synthetic peers.
func (r *runner) resources(ctx context.Context) ([]ResourceResult, error) {
	r.log.Info("resources: starting a fabric", "nodes", resourceNodes)
	l, err := r.newLab(ctx, "r")
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := r.reg.downLab(l); derr != nil {
			r.log.Warn("lab down", "err", derr)
		}
	}()
	cli, err := l.EtcdClient()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, weftetcd.ConfigKey(weftetcd.DefaultPrefix), resourceNetConfig); err != nil {
		return nil, err
	}
	nodes, err := r.addNodes(ctx, l, resourceNodes)
	if err != nil {
		return nil, err
	}
	watches := make([]*routeWatch, len(nodes))
	used := map[netip.Prefix]bool{}
	for i, node := range nodes {
		if watches[i], err = watchRoutes(node.Netns, lab.Device); err != nil {
			return nil, err
		}
		defer watches[i].close()
		e, err := l.Env(node)
		if err != nil {
			return nil, err
		}
		used[e.Subnet] = true
	}
	programmed := func(peers int) (time.Duration, error) {
		start := time.Now()
		for _, w := range watches {
			if err := w.wait(ctx, meshTimeout, func(seen map[netip.Prefix]time.Time) bool { return len(seen) >= peers }); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	if _, err := programmed(len(nodes) - 1); err != nil {
		return nil, err
	}
	var out []ResourceResult
	idle, err := r.window(ctx, l, nodes, "idle", len(nodes)-1, r.cfg.IdleWindow)
	out = append(out, idle)
	if err != nil {
		return out, err
	}
	synth := &synthetic{cli: cli, used: used}
	defer synth.close()
	for _, peers := range slices.Sorted(slices.Values(r.cfg.Peers)) {
		start := time.Now()
		if err := synth.grow(ctx, peers); err != nil {
			return out, err
		}
		if _, err := programmed(peers + len(nodes) - 1); err != nil {
			return out, fmt.Errorf("programming %d synthetic peers: %w", peers, err)
		}
		took := time.Since(start)
		r.log.Info("resources: synthetic peers programmed on every node", "peers", peers, "ms", ms(took))
		res, err := r.window(ctx, l, nodes, fmt.Sprintf("%d synthetic peers", peers), peers+len(nodes)-1, r.cfg.Window)
		res.ProgramMs = round(ms(took), 1)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// window waits the settle time, then samples every node's weftd for d.
func (r *runner) window(ctx context.Context, l *lab.Lab, nodes []*lab.Node, scenario string, peers int, d time.Duration) (ResourceResult, error) {
	res := ResourceResult{Scenario: scenario, Nodes: len(nodes), Peers: peers, WindowS: Num(d.Seconds())}
	r.log.Info("resources: window", "scenario", scenario, "settle", r.cfg.Settle, "window", d)
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return res, err
	}
	pids := make([]int, len(nodes))
	for i, node := range nodes {
		pid, ok := l.State().Procs["weftd/"+node.Name]
		if !ok {
			return res, fmt.Errorf("%s has no weftd", node.Name)
		}
		pids[i] = pid
	}
	first := make([]procSample, len(nodes))
	last := make([]procSample, len(nodes))
	for i, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return res, err
		}
		first[i], last[i] = s, s
	}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if err := sleep(ctx, min(sampleEvery, time.Until(end))); err != nil {
			return res, err
		}
		for i, pid := range pids {
			s, err := readProc(pid)
			if err != nil {
				return res, err
			}
			last[i] = s
		}
	}
	var cpu, children, rss []float64
	var growth float64
	anon := 0.0
	for i := range pids {
		secs := last[i].at.Sub(first[i].at).Seconds()
		cpu = append(cpu, float64(last[i].cpuTicks-first[i].cpuTicks)/userHZ/secs*1000)
		children = append(children, float64(last[i].childTicks-first[i].childTicks)/userHZ/secs*1000)
		mib := float64(last[i].rssKiB) / 1024
		if len(rss) == 0 || mib > slices.Max(rss) {
			anon = float64(last[i].anonKiB) / 1024
		}
		rss = append(rss, mib)
		g := float64(last[i].rssKiB) - float64(first[i].rssKiB)
		if i == 0 || absf(g) > absf(growth) {
			growth = g
		}
	}
	res.CPUmc, res.CPUMaxmc, res.ChildCPUmc = round(Median(cpu), 2), round(slices.Max(cpu), 2), round(Median(children), 2)
	res.RSSMiB, res.RSSMaxMiB, res.RSSAnonMiB = round(Median(rss), 1), round(slices.Max(rss), 1), round(anon, 1)
	res.RSSGrowthKiB = round(growth, 0)
	n, err := l.NodeNS(nodes[0])
	if err != nil {
		return res, err
	}
	code, body, err := lab.HTTPGet(ctx, n, "http://"+nodeapi.DefaultHealthAddr+"/metrics")
	if err != nil || code != 200 {
		r.log.Warn("reading node1's /metrics", "code", code, "err", err)
		return res, nil
	}
	res.Go = goMetrics(body)
	r.log.Info("resources: measured", "scenario", scenario, "rss_mib", res.RSSMaxMiB, "cpu_mc", res.CPUMaxmc, "growth_kib", res.RSSGrowthKiB)
	return res, nil
}

func absf(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// goMetricNames are the Go runtime figures kept from weftd's /metrics, in bytes unless named
// otherwise.
var goMetricNames = []string{
	"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_heap_idle_bytes",
	"go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes",
	"go_memstats_heap_objects", "go_goroutines", "go_threads", "process_resident_memory_bytes",
}

// goMetrics picks goMetricNames out of a Prometheus text exposition; byte figures become MiB.
func goMetrics(body []byte) map[string]Num {
	out := map[string]Num{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(goMetricNames, name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		if key, isBytes := strings.CutSuffix(name, "_bytes"); isBytes {
			out[key+"_mib"] = round(v/(1<<20), 2)
		} else {
			out[name] = Num(v)
		}
	}
	return out
}

// synthetic writes peers straight into etcd: leases with unique /26 subnets, public IPs in
// 198.18.16.0/20 (routed by the nodes towards the underlay namespace, which drops them: they never
// answer) and VTEP MACs, and no gossip address. They share one etcd lease, revoked by close.
type synthetic struct {
	cli   *clientv3.Client
	used  map[netip.Prefix]bool
	lease clientv3.LeaseID
	n     int
	next  netip.Addr
}

// grow adds synthetic peers until there are total of them.
func (s *synthetic) grow(ctx context.Context, total int) error {
	if s.lease == 0 {
		g, err := s.cli.Grant(ctx, 3600)
		if err != nil {
			return err
		}
		s.lease = g.ID
		s.next = netip.MustParseAddr("10.244.0.0")
	}
	const batch = 100
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := s.cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for s.n < total {
		sn, err := s.nextSubnet()
		if err != nil {
			return err
		}
		attrs := syntheticAttrs(s.n)
		val, err := attrs.MarshalJSON()
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(subnetKey(sn), string(val), clientv3.WithLease(s.lease)))
		s.n++
		if len(ops) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// nextSubnet returns the next /26 of 10.244.0.0/16 that no real node holds.
func (s *synthetic) nextSubnet() (netip.Prefix, error) {
	network := netip.MustParsePrefix("10.244.0.0/16")
	for network.Contains(s.next) {
		p := netip.PrefixFrom(s.next, 26)
		a := s.next.As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + 64
		s.next = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !s.used[p] {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /26 left in %s for synthetic peer %d", network, s.n+1)
}

// syntheticAttrs are the lease attributes of synthetic peer i.
func syntheticAttrs(i int) subnet.LeaseAttrs {
	return subnet.LeaseAttrs{
		PublicIP:    netip.AddrFrom4([4]byte{198, 18, byte(16 + i/250), byte(1 + i%250)}),
		BackendType: subnet.BackendVXLAN, VNI: 1,
		VtepMAC: net.HardwareAddr{0x0e, 0x57, 0x42, 0x00, byte(i >> 8), byte(i)},
		Format:  subnet.LeaseFormat, NodeName: fmt.Sprintf("synthetic-%04d", i),
		AttrVersion: time.Now().UnixNano(), AcquiredAt: time.Now().UTC(),
	}
}

func (s *synthetic) close() {
	if s.lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = s.cli.Revoke(ctx, s.lease)
	}
}
