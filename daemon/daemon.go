package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/etcdclient"
	"github.com/weft-net/weft/peerview"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
	"github.com/weft-net/weft/vxlan"
)

// ErrSubnetChanged is returned when the node's lease was lost and its subnet went to another node:
// pods on the old subnet must be restarted.
var ErrSubnetChanged = errors.New("the node's subnet changed")

// Daemon is one running weftd.
type Daemon struct {
	cfg *Config
	log *slog.Logger

	mgr     *weftetcd.Manager
	netCfg  *subnet.Config
	be      *vxlan.Backend
	view    *peerview.View
	member  *gossip.Member
	rules   *Rules
	prober  *prober
	metrics *metrics
	attrs   subnet.LeaseAttrs

	lease       atomic.Pointer[subnet.Lease]
	leaseHeld   atomic.Bool
	programmed  atomic.Bool
	stalled     atomic.Bool
	lastErr     atomic.Pointer[string]
	envMu       sync.Mutex
	readyLogged atomic.Bool
}

// Run runs weftd until ctx ends (SIGTERM: the kernel state stays in place for the next start) or a
// fatal error.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	d := &Daemon{cfg: cfg, log: log.With("component", "weftd", "node", cfg.NodeName)}
	return d.run(ctx)
}

func (d *Daemon) run(ctx context.Context) error {
	cfg := d.cfg
	cli, err := newEtcdClient(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	d.mgr, err = weftetcd.New(cli, weftetcd.Options{
		Prefix: cfg.EtcdPrefix, NodeName: cfg.NodeName, StateDir: cfg.StateDir, TTL: cfg.LeaseTTL, Logger: d.log,
	})
	if err != nil {
		return err
	}
	// 1. The network config.
	if d.netCfg, err = d.networkConfig(ctx); err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	nsh, err := netns.Get()
	if err != nil {
		return err
	}
	defer nsh.Close()
	ul, err := vxlan.FindUnderlay(h, cfg.Iface, cfg.PublicIP)
	if err != nil {
		return err
	}
	vcfg := d.vxlanConfig(ul)
	mac, err := vxlan.VTEPMAC(vcfg)
	if err != nil {
		return err
	}
	gossipAddr := cfg.GossipBind
	if !gossipAddr.IsValid() {
		gossipAddr = netip.AddrPortFrom(ul.IP, gossip.DefaultBindPort)
	}
	d.attrs = subnet.LeaseAttrs{
		PublicIP: ul.IP, BackendType: subnet.BackendVXLAN, VNI: d.netCfg.Backend.VNI, VtepMAC: mac,
		Format: subnet.LeaseFormat, NodeName: cfg.NodeName, GossipAddr: gossipAddr,
	}
	// 2. The lease.
	lease, held, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	d.lease.Store(lease)
	d.leaseHeld.Store(held)
	if held {
		d.log.Info("subnet lease held", "subnet", lease.Subnet, "public_ip", ul.IP, "vtep_mac", mac.String(), "etcd_lease", fmt.Sprintf("%x", lease.EtcdLease))
	}
	// 3. The device.
	vcfg.Subnet = lease.Subnet
	if d.be, err = vxlan.New(vcfg, h, nsh); err != nil {
		return err
	}
	if err := d.be.EnsureDevice(ctx); err != nil {
		return err
	}
	// 4. subnet.env, not ready yet.
	if err := d.writeEnv(false); err != nil {
		return err
	}
	// 5. Forwarding and rules.
	if err := enableForwarding(); err != nil {
		return err
	}
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	d.rules = NewRules(ipt, d.netCfg.Network, lease.Subnet, cfg.IPMasq, d.log)
	if err := d.rules.Ensure(); err != nil {
		return err
	}
	// 6. Gossip and the peer view.
	if d.view, err = peerview.NewView(peerview.ViewConfig{
		LocalNode: cfg.NodeName, Quiet: peerview.DefaultQuiet, MaxDelay: peerview.DefaultMaxDelay, Logger: d.log,
	}, d.program); err != nil {
		return err
	}
	d.view.SetLocalSubnet(lease.Subnet)
	gcfg := gossip.DefaultConfig()
	gcfg.NodeName, gcfg.KeyFile, gcfg.Label, gcfg.Join, gcfg.Logger = cfg.NodeName, cfg.GossipKeyFile, cfg.GossipLabel, cfg.Join, d.log
	gcfg.BindAddr, gcfg.BindPort, gcfg.AdvertiseAddr = gossipAddr.Addr(), int(gossipAddr.Port()), ul.IP
	if d.member, err = gossip.NewMember(gcfg, d.view); err != nil {
		return err
	}
	if err := d.member.SetMeta(d.meta(lease)); err != nil {
		return err
	}
	d.joinSavedPeers()
	d.prober = newProber(cfg.ProbeInterval, d.log)
	d.metrics = newMetrics(d.gauges())
	hs := &healthServer{addr: cfg.HealthAddr, log: d.log, live: d.live, ready: d.ready, peers: d.debugPeers, metrics: d.metrics}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.keepLease(ctx) })
	g.Go(func() error {
		return d.mgr.Watch(ctx, d.leaseHandler())
	})
	g.Go(func() error { return d.view.Run(ctx) })
	g.Go(func() error { return d.member.Run(ctx) })
	g.Go(func() error { return d.be.Run(ctx) })
	g.Go(func() error { return d.rules.Run(ctx, cfg.RulesInterval) })
	g.Go(func() error { return d.prober.Run(ctx) })
	g.Go(func() error { return hs.Run(ctx) })
	g.Go(func() error { return d.reloadKeysOnHUP(ctx) })
	g.Go(func() error { return d.watchdog(ctx) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	d.log.Info("weftd stopped; device, peers and rules stay in place for the next start", "err", err)
	return err
}

func (d *Daemon) vxlanConfig(ul vxlan.Underlay) vxlan.Config {
	mtu := d.cfg.MTU
	if mtu == 0 {
		mtu = d.netCfg.Backend.MTU
	}
	return vxlan.Config{
		Device: d.cfg.DeviceName, VNI: d.netCfg.Backend.VNI, Port: d.netCfg.Backend.Port, MTU: mtu,
		UnderlayLink: ul.Link, LocalIP: ul.IP,
		GBP: d.netCfg.Backend.GBP, Learning: d.netCfg.Backend.Learning, DirectRouting: d.netCfg.Backend.DirectRouting,
		TxChecksumOffload: d.cfg.TxChecksumOffload, StateDir: d.cfg.StateDir, NodeName: d.cfg.NodeName,
		ResyncInterval: d.cfg.ResyncInterval, RouteProtocol: d.cfg.RouteProtocol, Logger: d.log,
	}
}

func (d *Daemon) meta(l *subnet.Lease) gossip.Meta {
	return gossip.Meta{
		NodeName: d.cfg.NodeName, Subnet: l.Subnet, PublicIP: l.Attrs.PublicIP, VtepMAC: l.Attrs.VtepMAC,
		VNI: l.Attrs.VNI, AttrVersion: l.Attrs.AttrVersion,
	}
}

// acquire takes the node's lease. When etcd does not answer and the local state names the subnet the
// node held, it returns a provisional lease on that subnet (held == false) so that a node restarted
// during an etcd outage keeps its subnet and datapath; keepLease confirms it once etcd is back.
// Without local state it waits for etcd.
func (d *Daemon) acquire(ctx context.Context) (l *subnet.Lease, held bool, err error) {
	last, hasLast := d.mgr.LastSubnet()
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if hasLast {
			actx, cancel = context.WithTimeout(ctx, configProbe)
		}
		l, err = d.mgr.Acquire(actx, d.netCfg, d.attrs)
		cancel()
		switch {
		case err == nil:
			return l, true, nil
		case errors.Is(err, weftetcd.ErrNoFreeSubnet) || ctx.Err() != nil:
			return nil, false, err
		case hasLast:
			d.log.Warn("etcd does not answer; keeping the subnet of the local state until it does", "subnet", last, "err", err)
			// The attributes may have changed since the lease was written (a new VTEP MAC): a fresh
			// AttrVersion makes peers take them from gossip over the lease until etcd is back.
			attrs := d.attrs
			attrs.AttrVersion = time.Now().UnixNano()
			return &subnet.Lease{Subnet: last, Attrs: attrs}, false, nil
		}
		d.log.Warn("acquiring a subnet lease failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// program is the view's sink: it hands the desired peer set to the backend.
func (d *Daemon) program(peers []backend.Peer) {
	start := time.Now()
	err := d.be.SetPeers(peers)
	d.metrics.observeReconcile(time.Since(start), err)
	if err != nil {
		d.log.Error("programming peers", "peers", len(peers), "err", err)
	}
	if kerr := kernelErrors(err); kerr != nil {
		msg := kerr.Error()
		d.lastErr.Store(&msg)
	} else {
		d.lastErr.Store(nil)
	}
	targets := make(map[netip.Addr]string, len(peers))
	for _, p := range peers {
		targets[p.Subnet.Addr()] = p.Name
	}
	d.prober.setTargets(targets)
	d.programmed.Store(true)
	d.updateReady()
}

// kernelErrors drops the invalid-peer errors from a SetPeers error: a peer that cannot be programmed
// (a lease with a bad MAC, or one overlapping this node's subnet) is logged and counted, but does not
// make the node unready — its other peers are programmed.
func kernelErrors(err error) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []error
	for _, e := range errs {
		if !errors.Is(e, backend.ErrInvalidPeer) {
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// watchdog marks the daemon not live when the backend's loop stops reconciling: it resyncs at least
// every ResyncInterval, so three intervals without a reconcile mean it is stuck.
func (d *Daemon) watchdog(ctx context.Context) error {
	t := time.NewTicker(d.cfg.ResyncInterval)
	defer t.Stop()
	last, misses := d.be.Stats().Reconciles, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if r := d.be.Stats().Reconciles; r != last {
			last, misses = r, 0
		} else {
			misses++
		}
		d.stalled.Store(misses >= 3)
	}
}

// keepLease keeps the lease alive; when it is lost it re-acquires the same subnet if it is free, and
// fails when the subnet went to another node.
func (d *Daemon) keepLease(ctx context.Context) error {
	if !d.leaseHeld.Load() {
		if err := d.confirmLease(ctx); err != nil {
			return err
		}
	}
	for {
		l := d.lease.Load()
		err := d.mgr.KeepAlive(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, weftetcd.ErrLeaseLost) {
			return err
		}
		d.metrics.leaseLosses.Inc()
		d.log.Error("subnet lease lost; not ready until it is re-acquired", "subnet", l.Subnet, "err", err)
		d.leaseHeld.Store(false)
		d.updateReady()
		if err := d.confirmLease(ctx); err != nil {
			return err
		}
	}
}

// confirmLease acquires the lease of the subnet the node runs on, retrying while etcd does not
// answer. It fails when the subnet went to another node.
func (d *Daemon) confirmLease(ctx context.Context) error {
	old := d.lease.Load()
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		nl, err := d.mgr.Acquire(ctx, d.netCfg, d.attrs)
		switch {
		case err == nil && nl.Subnet != old.Subnet:
			return fmt.Errorf("%w: lost %s and now hold %s; restart weftd, and then restart the pods that hold addresses of %s",
				ErrSubnetChanged, old.Subnet, nl.Subnet, old.Subnet)
		case err == nil:
			d.log.Info("subnet lease held", "subnet", nl.Subnet, "etcd_lease", fmt.Sprintf("%x", nl.EtcdLease))
			d.lease.Store(nl)
			d.leaseHeld.Store(true)
			if err := d.member.SetMeta(d.meta(nl)); err != nil {
				d.log.Warn("gossip meta update", "err", err)
			}
			d.updateReady()
			return nil
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, weftetcd.ErrNoFreeSubnet):
			return fmt.Errorf("%w: %s went to another node and no subnet is free: %w", ErrSubnetChanged, old.Subnet, err)
		}
		d.log.Warn("acquiring the subnet lease failed; retrying", "subnet", old.Subnet, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// ready reports why the node is not ready, or nil.
func (d *Daemon) ready() error {
	switch {
	case !d.leaseHeld.Load():
		return errors.New("no subnet lease held")
	case !d.programmed.Load():
		return errors.New("initial peer set not programmed yet")
	}
	if e := d.lastErr.Load(); e != nil {
		return fmt.Errorf("last reconcile failed: %s", *e)
	}
	return nil
}

// live reports whether the daemon's loops are running; any loop that fails ends the process.
func (d *Daemon) live() error {
	if d.stalled.Load() {
		return fmt.Errorf("the VXLAN reconcile loop has not run for %v", 3*d.cfg.ResyncInterval)
	}
	return nil
}

// updateReady writes WEFT_READY to subnet.env when readiness changed.
func (d *Daemon) updateReady() {
	ready := d.ready() == nil
	if d.readyLogged.Swap(ready) != ready {
		if ready {
			d.log.Info("ready: lease held, device up, peers programmed")
		} else {
			d.log.Warn("not ready", "why", d.ready())
		}
	}
	if err := d.writeEnv(ready); err != nil {
		d.log.Error("writing subnet file", "path", d.cfg.SubnetFile, "err", err)
	}
}

func (d *Daemon) writeEnv(ready bool) error {
	d.envMu.Lock()
	defer d.envMu.Unlock()
	l := d.lease.Load()
	e := &subnet.Env{Network: d.netCfg.Network, Subnet: l.Subnet, MTU: d.be.MTU(), IPMasq: d.cfg.IPMasq, Ready: ready}
	if cur, err := subnet.ReadEnvFile(d.cfg.SubnetFile); err == nil && *cur == *e {
		return nil
	}
	return subnet.WriteEnvFile(d.cfg.SubnetFile, e)
}

func (d *Daemon) reloadKeysOnHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if err := d.member.ReloadKeys(); err != nil {
				d.log.Error("reloading gossip keys", "file", d.cfg.GossipKeyFile, "err", err)
			} else {
				d.log.Info("gossip keys reloaded", "file", d.cfg.GossipKeyFile)
			}
		}
	}
}

func newEtcdClient(cfg *Config) (*clientv3.Client, error) {
	return etcdclient.New(cfg.Etcd)
}
