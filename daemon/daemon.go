package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"

	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/backoff"
	"github.com/weft-net/weft/internal/etcdclient"
	"github.com/weft-net/weft/peerview"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
	"github.com/weft-net/weft/vxlan"
)

// Run runs weftd until ctx ends (SIGTERM: the kernel state stays in place for the next start) or a
// fatal error. It builds the real components — etcd client and lease manager, netlink, the VXLAN
// backend, iptables rules, gossip, the peer view, the prober and the health server — and hands
// them to the node's logic.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	log = log.With("component", "weftd", "node", cfg.NodeName)
	cli, err := etcdclient.New(cfg.Etcd)
	if err != nil {
		return err
	}
	defer cli.Close()
	mgr, err := weftetcd.New(cli, weftetcd.Options{
		Prefix: cfg.EtcdPrefix, FlannelCompat: cfg.FlannelCompat, NodeName: cfg.NodeName, StateDir: cfg.StateDir, TTL: cfg.LeaseTTL, Logger: log,
	})
	if err != nil {
		return err
	}
	netCfg, err := networkConfig(ctx, mgr, cfg.StateDir, log)
	if err != nil {
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
	n, err := newNode(ctx, cfg, netCfg, mgr, h, nsh, log)
	if err != nil {
		return err
	}
	return n.serve(ctx, cfg)
}

// newNode finds the underlay, acquires the lease, and builds the backend, the device, the rules,
// the peer view and the gossip member around the node's logic.
func newNode(ctx context.Context, cfg *Config, netCfg *subnet.Config, mgr *weftetcd.Manager, h *netlink.Handle, nsh netns.NsHandle, log *slog.Logger) (*node, error) {
	ul, err := vxlan.FindUnderlay(h, cfg.Iface, cfg.PublicIP)
	if err != nil {
		return nil, err
	}
	vcfg := vxlanConfig(cfg, netCfg, ul, log)
	mac, err := vxlan.VTEPMAC(vcfg)
	if err != nil {
		return nil, err
	}
	gossipAddr := cfg.GossipBind
	if !gossipAddr.IsValid() {
		gossipAddr = netip.AddrPortFrom(ul.IP, gossip.DefaultBindPort)
	}
	key, err := loadNodeKey(cfg.StateDir, log)
	if err != nil {
		return nil, err
	}
	n := &node{cfg: nodeConfig{
		name: cfg.NodeName, network: netCfg, ipMasq: cfg.IPMasq, stateDir: cfg.StateDir, resync: cfg.ResyncInterval,
		attrs: subnet.LeaseAttrs{
			PublicIP: ul.IP, BackendType: subnet.BackendVXLAN, VNI: netCfg.Backend.VNI, VtepMAC: mac,
			Format: subnet.LeaseFormat, NodeName: cfg.NodeName, GossipAddr: gossipAddr,
			NodeKey: key.Public().(ed25519.PublicKey),
		},
		retry: backoff.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second},
	}, log: log, store: mgr, publish: envWriter(cfg.SubnetFile)}
	lease, held, err := acquireLease(ctx, mgr, n.cfg, configProbe, log)
	if err != nil {
		return nil, err
	}
	if held {
		log.Info("subnet lease held", "subnet", lease.Subnet, "public_ip", ul.IP, "vtep_mac", mac.String(), "etcd_lease", fmt.Sprintf("%x", lease.EtcdLease))
	}
	vcfg.Subnet = lease.Subnet
	be, err := vxlan.New(vcfg, h, nsh)
	if err != nil {
		return nil, err
	}
	if err := be.EnsureDevice(ctx); err != nil {
		return nil, err
	}
	n.be = be
	n.start(lease, held)
	if err := n.startGossip(cfg, netCfg, h, ul, gossipAddr, key); err != nil {
		return nil, err
	}
	n.useSavedLeases()
	n.prober = newProber(cfg.ProbeInterval, log)
	n.metrics = newMetrics(n.gauges())
	return n, nil
}

// startGossip builds the peer view and the gossip member, which signs its meta with the node key
// and lets in only the members the view's leases back.
func (n *node) startGossip(cfg *Config, netCfg *subnet.Config, h *netlink.Handle, ul vxlan.Underlay, addr netip.AddrPort, key ed25519.PrivateKey) error {
	lease := n.snapshot().lease
	view, err := peerview.NewView(peerview.ViewConfig{
		LocalNode: cfg.NodeName, Quiet: peerview.DefaultQuiet, MaxDelay: peerview.DefaultMaxDelay, Logger: n.log,
	}, n.program)
	if err != nil {
		return err
	}
	n.view = view
	view.SetLocalSubnet(lease.Subnet)
	local, err := vxlan.LocalFacts(h, ul)
	if err != nil {
		return err
	}
	local.PodNetwork, local.VtepMAC = netCfg.Network, n.cfg.attrs.VtepMAC
	view.SetLocal(local)
	gcfg := gossip.DefaultConfig()
	gcfg.NodeName, gcfg.KeyFile, gcfg.Label, gcfg.Join, gcfg.Logger = cfg.NodeName, cfg.GossipKeyFile, cfg.GossipLabel, cfg.Join, n.log
	gcfg.BindAddr, gcfg.BindPort, gcfg.AdvertiseAddr = addr.Addr(), int(addr.Port()), ul.IP
	gcfg.NodeKey, gcfg.Admit = key, view
	member, err := gossip.NewMember(gcfg, view)
	if err != nil {
		return err
	}
	n.member = member
	return member.SetMeta(n.meta(lease))
}

// nodeKeyFile is the node key's file in the state directory.
const nodeKeyFile = "node.key"

// loadNodeKey loads the node's identity key from the state directory, making one on first start.
func loadNodeKey(stateDir string, log *slog.Logger) (ed25519.PrivateKey, error) {
	path := filepath.Join(stateDir, nodeKeyFile)
	key, created, err := gossip.LoadNodeKey(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created the node key; its public half goes into the lease", "file", path)
	}
	return key, nil
}

// serve installs forwarding and the rules, then runs every loop until ctx ends or one fails.
func (n *node) serve(ctx context.Context, cfg *Config) error {
	if err := enableForwarding(); err != nil {
		return err
	}
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	rules := NewRules(ipt, n.cfg.network.Network, n.snapshot().lease.Subnet, cfg.IPMasq, n.log).WithForwardPlacement(cfg.ForwardPlacement)
	if err := rules.Ensure(); err != nil {
		return err
	}
	hs := &healthServer{addr: cfg.HealthAddr, log: n.log, live: n.live, ready: n.ready, peers: n.debugPeers, metrics: n.metrics}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.keepLease(ctx) })
	g.Go(func() error { return n.store.Watch(ctx, n.leaseHandler()) })
	g.Go(func() error { return n.view.Run(ctx) })
	g.Go(func() error { return n.member.Run(ctx) })
	g.Go(func() error { return n.be.Run(ctx) })
	g.Go(func() error { return rules.Run(ctx, cfg.RulesInterval) })
	g.Go(func() error { return n.prober.Run(ctx) })
	g.Go(func() error { return hs.Run(ctx) })
	g.Go(func() error { return reloadKeysOnHUP(ctx, n.member, cfg.GossipKeyFile, n.log) })
	g.Go(func() error { return n.watchdog(ctx) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	n.log.Info("weftd stopped; device, peers and rules stay in place for the next start", "err", err)
	return err
}

func vxlanConfig(cfg *Config, netCfg *subnet.Config, ul vxlan.Underlay, log *slog.Logger) vxlan.Config {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = netCfg.Backend.MTU
	}
	b := netCfg.Backend
	return vxlan.Config{
		Device: cfg.DeviceName, VNI: b.VNI, Port: b.Port, MTU: mtu,
		UnderlayLink: ul.Link, LocalIP: ul.IP,
		GBP: b.GBP, Learning: b.Learning, DirectRouting: b.DirectRouting,
		TxChecksumOffload: cfg.TxChecksumOffload, StateDir: cfg.StateDir, NodeName: cfg.NodeName,
		ResyncInterval: cfg.ResyncInterval, RouteProtocol: cfg.RouteProtocol, Logger: log,
	}
}

// envWriter returns the function that publishes subnet.env at path.
func envWriter(path string) func(*subnet.Env) error {
	return func(e *subnet.Env) error { return subnet.WriteEnvFile(path, e) }
}

// reloadKeysOnHUP reloads the gossip keys on every SIGHUP until ctx ends.
func reloadKeysOnHUP(ctx context.Context, m gossipMember, keyFile string, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if err := m.ReloadKeys(); err != nil {
				log.Error("reloading gossip keys", "file", keyFile, "err", err)
			} else {
				log.Info("gossip keys reloaded", "file", keyFile)
			}
		}
	}
}
