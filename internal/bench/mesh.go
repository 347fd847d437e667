package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/weft-net/weft/backend"
	weftetcd "github.com/weft-net/weft/subnet/etcd"

	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/subnet"
)

const (
	meshTimeout = 2 * time.Minute
	joinTimeout = 30 * time.Second
)

func subnetsPrefix() string { return weftetcd.SubnetsPrefix(weftetcd.DefaultPrefix) }

func subnetKey(s netip.Prefix) string { return weftetcd.SubnetKey(weftetcd.DefaultPrefix, s) }

// meshSize times cold starts and joins on a fabric of n nodes.
func (r *runner) meshSize(ctx context.Context, n int) (*MeshResult, *JoinResult, error) {
	r.log.Info("mesh: starting a fabric", "nodes", n)
	l, err := r.newLab(ctx, fmt.Sprintf("m%d", n))
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if derr := r.reg.downLab(l); derr != nil {
			r.log.Warn("lab down", "err", derr)
		}
	}()
	nodes, err := r.addNodes(ctx, l, n)
	if err != nil {
		return nil, nil, err
	}
	watches := make([]*routeWatch, len(nodes))
	for i, node := range nodes {
		if watches[i], err = watchRoutes(node.Netns, lab.Device); err != nil {
			return nil, nil, err
		}
		defer watches[i].close()
	}
	cli, err := l.EtcdClient()
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	mesh := &MeshResult{Nodes: n}
	var runs []float64
	var spread []float64
	for rep := range r.cfg.MeshRuns {
		d, s, err := r.coldStart(ctx, l, nodes, watches, cli)
		if err != nil {
			return mesh, nil, fmt.Errorf("cold start %d: %w", rep+1, err)
		}
		r.log.Info("mesh: cold start", "nodes", n, "run", rep+1, "ms", ms(d))
		runs, spread = append(runs, ms(d)), append(spread, ms(s))
		mesh.RunsMs = append(mesh.RunsMs, round(ms(d), 1))
	}
	mesh.MedianMs, mesh.StartSpreadMs = round(Median(runs), 1), round(Median(spread), 1)
	count := r.cfg.Joins[n]
	if count == 0 {
		return mesh, nil, nil
	}
	join, err := r.joins(ctx, l, nodes, watches, cli, count)
	return mesh, join, err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// coldStart kills every weftd, removes every lease, device and state file, starts every weftd
// again and returns the time until every node routes every other node's subnet, and how long
// starting the daemons took.
func (r *runner) coldStart(ctx context.Context, l *lab.Lab, nodes []*lab.Node, watches []*routeWatch, cli *clientv3.Client) (mesh, spread time.Duration, err error) {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, node := range nodes {
		wg.Go(func() { errs[i] = l.StopWeftd(node, syscall.SIGKILL) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	if _, err := cli.Delete(ctx, subnetsPrefix(), clientv3.WithPrefix()); err != nil {
		return 0, 0, err
	}
	for i, node := range nodes {
		if err := wipeNode(l, node); err != nil {
			return 0, 0, err
		}
		if err := watches[i].resync(); err != nil {
			return 0, 0, err
		}
	}
	start := time.Now()
	for _, node := range nodes {
		if err := l.StartWeftd(node); err != nil {
			return 0, 0, err
		}
	}
	spread = time.Since(start)
	want := len(nodes) - 1
	var last time.Time
	for _, w := range watches {
		if err := w.wait(ctx, meshTimeout, func(seen map[netip.Prefix]time.Time) bool { return len(seen) >= want }); err != nil {
			return 0, 0, err
		}
	}
	subnets := make([]netip.Prefix, len(nodes))
	for i, node := range nodes {
		if err := l.WaitReady(ctx, node, meshTimeout); err != nil {
			return 0, 0, err
		}
		e, err := l.Env(node)
		if err != nil {
			return 0, 0, err
		}
		subnets[i] = e.Subnet
	}
	for i, w := range watches {
		for j, s := range subnets {
			if i == j {
				continue
			}
			t, ok := w.when(s)
			if !ok {
				return 0, 0, fmt.Errorf("%s does not route %s (%s's subnet)", nodes[i].Name, s, nodes[j].Name)
			}
			if t.After(last) {
				last = t
			}
		}
	}
	return last.Sub(start), spread, nil
}

// wipeNode removes what weftd left on a stopped node: its VXLAN device (and with it every peer
// entry), its state directory and its subnet file, as on a freshly booted machine.
func wipeNode(l *lab.Lab, node *lab.Node) error {
	n, err := l.NodeNS(node)
	if err != nil {
		return err
	}
	err = nsutil.WithHandle(n, func(h *netlink.Handle) error {
		link, err := h.LinkByName(lab.Device)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			return err
		}
		return h.LinkDel(link)
	})
	if err != nil {
		return fmt.Errorf("%s: delete %s: %w", node.Name, lab.Device, err)
	}
	if err := os.RemoveAll(filepath.Join(node.Dir, "state")); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(node.Dir, "subnet.env")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// leaseEvent is a lease created in etcd, as the bench's own watch saw it.
type leaseEvent struct {
	subnet netip.Prefix
	node   string
	attrs  *subnet.LeaseAttrs
	at     time.Time
}

// watchLeases reports every lease created under the subnets prefix until ctx ends.
func watchLeases(ctx context.Context, cli *clientv3.Client) <-chan leaseEvent {
	out := make(chan leaseEvent, 64)
	wch := cli.Watch(ctx, subnetsPrefix(), clientv3.WithPrefix())
	go func() {
		defer close(out)
		for wr := range wch {
			now := time.Now()
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut || ev.Kv.CreateRevision != ev.Kv.ModRevision {
					continue
				}
				s, err := subnet.ParseSubnetKey(string(ev.Kv.Key[len(subnetsPrefix()):]))
				if err != nil {
					continue
				}
				a, err := subnet.ParseLeaseAttrs(ev.Kv.Value)
				if err != nil {
					continue
				}
				select {
				case out <- leaseEvent{subnet: s, node: a.NodeName, attrs: a, at: now}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// joins times count joins of one extra node: each time its weftd is stopped and its lease
// deleted until every peer has dropped its route, then its weftd is started again and the time
// until every peer routes its subnet is taken from the lease's creation and from the start.
func (r *runner) joins(ctx context.Context, l *lab.Lab, peers []*lab.Node, watches []*routeWatch, cli *clientv3.Client, count int) (*JoinResult, error) {
	res := &JoinResult{Nodes: len(peers)}
	joiner, err := l.AddNode(ctx, r.cfg.WeftdFlags...)
	if err != nil {
		return res, err
	}
	if err := l.WaitReady(ctx, joiner, meshTimeout); err != nil {
		return res, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leases := watchLeases(wctx, cli)
	var fromLease, fromStart []time.Duration
	defer func() {
		res.LeaseToRouted, res.StartToRouted = Summarize(fromLease), Summarize(fromStart)
	}()
	r.log.Info("joins", "nodes", len(peers), "count", count)
	for i := range count {
		e, err := l.Env(joiner)
		if err != nil {
			return res, err
		}
		if err := routedEverywhere(ctx, watches, e.Subnet); err != nil {
			return res, err
		}
		if err := l.StopWeftd(joiner, syscall.SIGTERM); err != nil {
			return res, err
		}
		if _, err := cli.Delete(ctx, subnetKey(e.Subnet)); err != nil {
			return res, err
		}
		for _, w := range watches {
			if err := w.wait(ctx, joinTimeout, func(seen map[netip.Prefix]time.Time) bool { _, ok := seen[e.Subnet]; return !ok }); err != nil {
				return res, fmt.Errorf("join %d: peers forgetting %s: %w", i+1, e.Subnet, err)
			}
		}
	drain:
		for {
			select {
			case <-leases:
			default:
				break drain
			}
		}
		start := time.Now()
		if err := l.StartWeftd(joiner); err != nil {
			return res, err
		}
		var ev leaseEvent
		for ev.node != joiner.Name {
			select {
			case ev = <-leases:
			case <-time.After(joinTimeout):
				return res, fmt.Errorf("join %d: no lease of %s in etcd: %w", i+1, joiner.Name, ErrTimeout)
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
		if err := routedEverywhere(ctx, watches, ev.subnet); err != nil {
			return res, fmt.Errorf("join %d: %w", i+1, err)
		}
		var last time.Time
		for _, w := range watches {
			if t, _ := w.when(ev.subnet); t.After(last) {
				last = t
			}
		}
		fromLease, fromStart = append(fromLease, last.Sub(ev.at)), append(fromStart, last.Sub(start))
		for _, p := range peers {
			if l.CheckPeer(p, backend.Peer{Subnet: ev.subnet, PublicIP: ev.attrs.PublicIP, VtepMAC: ev.attrs.VtepMAC}) != nil {
				res.Incomplete++
				break
			}
		}
		if err := l.WaitReady(ctx, joiner, meshTimeout); err != nil {
			return res, err
		}
	}
	return res, nil
}

// routedEverywhere waits until every watched node routes s.
func routedEverywhere(ctx context.Context, watches []*routeWatch, s netip.Prefix) error {
	for _, w := range watches {
		if err := w.wait(ctx, joinTimeout, func(seen map[netip.Prefix]time.Time) bool { _, ok := seen[s]; return ok }); err != nil {
			return fmt.Errorf("routing %s: %w", s, err)
		}
	}
	return nil
}
