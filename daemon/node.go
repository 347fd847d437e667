package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/backoff"
	"github.com/weft-net/weft/peerview"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

var (
	// ErrSubnetChanged is returned when the node's lease was lost and its subnet went to another
	// node: pods on the old subnet must be restarted.
	ErrSubnetChanged = errors.New("the node's subnet changed")
	// ErrEveryPeerFailed marks a reconcile in which every peer failed: the fault is more likely
	// this node's than each peer's, and the node is not ready.
	ErrEveryPeerFailed = errors.New("every peer failed")
)

// leaseStore is what the node needs of etcd: subnet/etcd's Manager.
type leaseStore interface {
	Acquire(ctx context.Context, cfg *subnet.Config, attrs subnet.LeaseAttrs) (*subnet.Lease, error)
	KeepAlive(ctx context.Context, l *subnet.Lease) error
	Watch(ctx context.Context, fn func(weftetcd.LeaseSet)) error
	LastSubnet() (netip.Prefix, bool)
	EtcdUp() bool
	LeaseExpiry() time.Time
}

// gossipMember is what the node needs of its gossip member: gossip's Member.
type gossipMember interface {
	SetMeta(gossip.Meta) error
	JoinAddrs(addrs []netip.AddrPort)
	Run(ctx context.Context) error
	ReloadKeys() error
	Stats() gossip.MemberStats
}

// peerView is what the node needs of the peer view: peerview's View, whose sink is node.program.
type peerView interface {
	SetLeases(leases []subnet.Lease)
	SetLocalSubnet(p netip.Prefix)
	SetLocal(l backend.Local)
	Run(ctx context.Context) error
	Snapshot() peerview.Snapshot
	Stats() peerview.ViewStats
}

// nodeConfig is what the node's logic needs of weftd's configuration.
type nodeConfig struct {
	name     string
	network  *subnet.Config
	attrs    subnet.LeaseAttrs
	ipMasq   bool
	stateDir string
	// resync is the backend's resync interval, which the watchdog checks the loop against.
	resync time.Duration
	// retry bounds the backoff of lease acquisitions while etcd does not answer.
	retry backoff.Backoff
}

// state is what decides readiness. node.mu guards it.
type state struct {
	lease *subnet.Lease
	// held: etcd confirmed the lease; false while it is provisional (from local state) or lost.
	held       bool
	programmed bool
	// kernelErr is the last SetPeers failure that is not one invalid peer's.
	kernelErr error
	// expiry is when the lease runs out unless renewed; zero when it never does or is not known.
	expiry time.Time
}

// ready says why the node is not ready, or nil.
func (s *state) ready() error {
	switch {
	case !s.held:
		return errors.New("no subnet lease held")
	case !s.programmed:
		return errors.New("initial peer set not programmed yet")
	case s.kernelErr != nil:
		return fmt.Errorf("last reconcile failed: %w", s.kernelErr)
	case !s.expiry.IsZero() && !time.Now().Before(s.expiry):
		return fmt.Errorf("the subnet lease expired at %s without a renewal: another node may hold the subnet", s.expiry.Format(time.RFC3339))
	}
	return nil
}

// node is weftd's logic: it keeps the lease, hands the view's peer sets to the backend, decides
// readiness and publishes subnet.env. It reaches etcd, the kernel and gossip only through the
// interfaces above, so tests drive it with fakes.
type node struct {
	cfg     nodeConfig
	log     *slog.Logger
	store   leaseStore
	be      backend.Backend
	view    peerView
	member  gossipMember
	prober  *prober
	metrics *metrics
	// publish writes subnet.env; it is called with mu held, in the order of the decisions.
	publish func(*subnet.Env) error

	mu          sync.Mutex
	st          state
	published   *subnet.Env
	readyLogged bool
	// rejected are the peers of the last set that the backend left out, by subnet.
	rejected map[netip.Prefix]rejectedPeer

	stalled atomic.Bool
}

// update applies change to the state and, in the same critical section, decides readiness and
// publishes subnet.env when it differs from what was published last. Every change of the state
// goes through it, so a published readiness can never be older than the state it came from.
func (n *node) update(change func(*state)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	change(&n.st)
	n.st.expiry = n.leaseExpiry()
	why := n.st.ready()
	if ready := why == nil; ready != n.readyLogged {
		n.readyLogged = ready
		if ready {
			n.log.Info("ready: lease held, device up, peers programmed")
		} else {
			n.log.Warn("not ready", "why", why)
		}
	}
	if n.st.lease == nil {
		return
	}
	e := &subnet.Env{
		Network: n.cfg.network.Network, Subnet: n.st.lease.Subnet, MTU: n.be.MTU(), IPMasq: n.cfg.ipMasq,
		Ready: why == nil, LeaseExpiry: n.st.expiry,
	}
	if n.published != nil && n.published.Equal(e) {
		return
	}
	if err := n.publish(e); err != nil {
		n.log.Error("writing the subnet file", "err", err)
		return
	}
	n.published = e
}

// leaseExpiry is when the held lease runs out unless renewed: its expiry when acquired or at its
// last renewal, whichever is later; zero for a reservation, a provisional lease or none. The
// caller holds mu.
func (n *node) leaseExpiry() time.Time {
	l := n.st.lease
	if l == nil || !n.st.held || l.EtcdLease == 0 {
		return time.Time{}
	}
	if renewed := n.store.LeaseExpiry(); renewed.After(l.Expiry) {
		return renewed.Truncate(time.Second)
	}
	return l.Expiry.Truncate(time.Second)
}

// snapshot returns a copy of the state.
func (n *node) snapshot() state {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}

// ready says why the node is not ready, or nil.
func (n *node) ready() error {
	s := n.snapshot()
	return s.ready()
}

// live says why the daemon is not live, or nil.
func (n *node) live() error {
	if n.stalled.Load() {
		return fmt.Errorf("the backend's reconcile loop has not reconciled for %v (it resyncs every %v)", 3*n.cfg.resync, n.cfg.resync)
	}
	return nil
}

// start takes the lease acquireLease returned and publishes subnet.env, not ready yet.
func (n *node) start(l *subnet.Lease, held bool) {
	n.update(func(s *state) { s.lease, s.held = l, held })
}

// lost records that etcd took the lease away.
func (n *node) lost() { n.update(func(s *state) { s.held = false }) }

// confirmed records that etcd gave the node lease l.
func (n *node) confirmed(l *subnet.Lease) { n.update(func(s *state) { s.lease, s.held = l, true }) }

// program is the view's sink: it hands the desired peer set to the backend and records the
// outcome. A peer the backend leaves out on its own (invalid data, or entries the kernel refused)
// is logged once and counted but does not make the node unready; any other failure does, and so
// does every peer failing.
func (n *node) program(peers []backend.Peer) {
	start := time.Now()
	err := n.be.SetPeers(peers)
	n.metrics.observeSetPeers(time.Since(start))
	kernelErr := kernelErrors(err, peers)
	if kernelErr != nil {
		n.log.Error("programming peers", "peers", len(peers), "err", kernelErr)
	}
	n.recordRejected(peers, err)
	targets := make(map[netip.Addr]string, len(peers))
	for _, p := range peers {
		targets[p.Subnet.Addr()] = p.Name
	}
	n.prober.setTargets(targets)
	n.update(func(s *state) {
		s.programmed = true
		s.kernelErr = kernelErr
	})
}

// kernelErrors is what of the error of SetPeers(set) makes the node unready: every failure that
// is not one peer's own (backend.PeerError.Isolated: a lease with a bad MAC, entries the kernel
// refused as invalid), and the peers' own failures too when every peer of a set of two or more
// failed. A single peer failing says nothing about this node.
func kernelErrors(err error, set []backend.Peer) error {
	peers, other := backend.SplitErrors(err)
	inSet := make(map[netip.Prefix]bool, len(set))
	for _, p := range set {
		inSet[p.Subnet] = true
	}
	failed := map[netip.Prefix]bool{}
	var own []error
	for _, p := range peers {
		if !p.Isolated() {
			other = append(other, p)
			continue
		}
		if inSet[p.Subnet] {
			failed[p.Subnet] = true
		}
		own = append(own, p)
	}
	if len(inSet) >= 2 && len(failed) == len(inSet) {
		other = append(other, fmt.Errorf("%w (%d of %d): %w", ErrEveryPeerFailed, len(failed), len(inSet), errors.Join(own...)))
	}
	return errors.Join(other...)
}

// rejectedPeer is a peer the backend left out, and its error.
type rejectedPeer struct {
	peer backend.Peer
	err  *backend.PeerError
}

// reason is the rejection's metric label.
func (r rejectedPeer) reason() backend.Reason {
	if r.err.Reason == "" {
		return backend.ReasonInvalid
	}
	return r.err.Reason
}

// recordRejected keeps the peers of peers that the backend left out on their own (err's isolated
// PeerErrors), logging each once: when it is first left out or its error changes.
func (n *node) recordRejected(peers []backend.Peer, err error) {
	bySubnet := make(map[netip.Prefix]backend.Peer, len(peers))
	for _, p := range peers {
		bySubnet[p.Subnet] = p
	}
	perr, _ := backend.SplitErrors(err)
	now := map[netip.Prefix]rejectedPeer{}
	for _, pe := range perr {
		if _, seen := now[pe.Subnet]; !pe.Isolated() || seen {
			continue
		}
		p, ok := bySubnet[pe.Subnet]
		if !ok {
			p = backend.Peer{Name: pe.Peer, Subnet: pe.Subnet}
		}
		now[pe.Subnet] = rejectedPeer{peer: p, err: pe}
	}
	n.mu.Lock()
	old := n.rejected
	n.rejected = now
	n.mu.Unlock()
	for sn, r := range now {
		if o, ok := old[sn]; !ok || o.err.Error() != r.err.Error() {
			n.log.Warn("peer left out by the backend", "peer", r.err.Peer, "subnet", sn, "reason", r.reason(), "err", r.err.Err)
		}
	}
}

// meta is what the node advertises in gossip for lease l.
func (n *node) meta(l *subnet.Lease) gossip.Meta {
	return gossip.Meta{
		NodeName: n.cfg.name, Subnet: l.Subnet, PublicIP: l.Attrs.PublicIP, VtepMAC: l.Attrs.VtepMAC,
		VNI: l.Attrs.VNI, AttrVersion: l.Attrs.AttrVersion,
	}
}

// keepLease keeps the lease alive (after confirming a provisional one); when it is lost it
// re-acquires the same subnet if it is free, and fails with ErrSubnetChanged when the subnet went
// to another node.
func (n *node) keepLease(ctx context.Context) error {
	if !n.snapshot().held {
		if err := n.confirmLease(ctx); err != nil {
			return err
		}
	}
	for {
		l := n.snapshot().lease
		err := n.store.KeepAlive(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, weftetcd.ErrLeaseLost) {
			return err
		}
		n.metrics.leaseLosses.Inc()
		n.log.Error("subnet lease lost; not ready until it is re-acquired", "subnet", l.Subnet, "err", err)
		n.lost()
		if err := n.confirmLease(ctx); err != nil {
			return err
		}
	}
}

// confirmLease acquires the lease of the subnet the node runs on, retrying while etcd does not
// answer. It fails when the subnet went to another node.
func (n *node) confirmLease(ctx context.Context) error {
	old := n.snapshot().lease
	bo := n.cfg.retry
	for {
		nl, err := n.store.Acquire(ctx, n.cfg.network, n.cfg.attrs)
		switch {
		case err == nil && nl.Subnet != old.Subnet:
			return fmt.Errorf("%w: lost %s and now hold %s; restart weftd, and then restart the pods that hold addresses of %s",
				ErrSubnetChanged, old.Subnet, nl.Subnet, old.Subnet)
		case err == nil:
			n.log.Info("subnet lease held", "subnet", nl.Subnet, "etcd_lease", fmt.Sprintf("%x", nl.EtcdLease))
			if err := n.member.SetMeta(n.meta(nl)); err != nil {
				n.log.Warn("gossip meta update", "err", err)
			}
			n.confirmed(nl)
			return nil
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, weftetcd.ErrNoFreeSubnet):
			return fmt.Errorf("%w: %s went to another node and no subnet is free: %w", ErrSubnetChanged, old.Subnet, err)
		}
		n.log.Warn("acquiring the subnet lease failed; retrying", "subnet", old.Subnet, "err", err)
		if !bo.Wait(ctx) {
			return nil
		}
	}
}

// watchdog marks the daemon not live when the backend's own loop stops reconciling: it resyncs
// at least every resync interval, so three intervals without one of its reconciles mean it is
// stuck. Reconciles that SetPeers runs do not count: they come from the view, not the loop. At
// every check it also republishes subnet.env with the lease's current expiry.
func (n *node) watchdog(ctx context.Context) error {
	t := time.NewTicker(n.cfg.resync)
	defer t.Stop()
	last, misses := n.be.Stats().LoopReconciles(), 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if r := n.be.Stats().LoopReconciles(); r != last {
			last, misses = r, 0
		} else {
			misses++
		}
		n.stalled.Store(misses >= 3)
		// Renewals move the lease's expiry, and its passing makes the node unready: publish both.
		n.update(func(*state) {})
	}
}

// acquireLease takes the node's lease at start. When etcd does not answer and the local state
// names the subnet the node held, it returns a provisional lease on that subnet (held == false) so
// that a node restarted during an etcd outage keeps its subnet and datapath; keepLease confirms it
// once etcd is back. Without local state it waits for etcd. probe bounds each attempt while local
// state exists.
func acquireLease(ctx context.Context, store leaseStore, cfg nodeConfig, probe time.Duration, log *slog.Logger) (*subnet.Lease, bool, error) {
	last, hasLast := store.LastSubnet()
	bo := cfg.retry
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if hasLast {
			actx, cancel = context.WithTimeout(ctx, probe)
		}
		l, err := store.Acquire(actx, cfg.network, cfg.attrs)
		cancel()
		switch {
		case err == nil:
			return l, true, nil
		case errors.Is(err, weftetcd.ErrNoFreeSubnet) || ctx.Err() != nil:
			return nil, false, err
		case hasLast:
			log.Warn("etcd does not answer; keeping the subnet of the local state until it does", "subnet", last, "err", err)
			// The attributes may have changed since the lease was written (a new VTEP MAC): a fresh
			// AttrVersion makes peers take them from gossip over the lease until etcd is back.
			attrs := cfg.attrs
			attrs.AttrVersion = time.Now().UnixNano()
			return &subnet.Lease{Subnet: last, Attrs: attrs}, false, nil
		}
		log.Warn("acquiring a subnet lease failed; retrying", "err", err)
		if !bo.Wait(ctx) {
			return nil, false, ctx.Err()
		}
	}
}
