// Package peerview is the control plane's peer view: it merges the etcd lease set, the authority on
// who owns which subnet, with the gossip members' claims into the complete desired peer set that
// backend.Backend.SetPeers takes, coalescing bursts of changes. Gossip never decides who owns a
// subnet: a claim "node X has subnet S" is used only when the etcd lease for S names X (ADR 0002).
package peerview

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
)

// ErrInvalidConfig marks a ViewConfig that does not validate.
var ErrInvalidConfig = errors.New("invalid peer view config")

// ViewConfig configures a View.
type ViewConfig struct {
	// LocalNode is this node's name: its lease and its gossip member are never peers.
	LocalNode string
	// Quiet is how long the view waits after a change for more changes before it calls the sink;
	// MaxDelay bounds that wait from the first change, so a steady stream of changes still reaches
	// the sink at least every MaxDelay.
	Quiet    time.Duration
	MaxDelay time.Duration
	// Logger receives the view's logs; nil means slog.Default().
	Logger *slog.Logger
}

// View defaults: a burst of joins arriving within 20ms of each other is one sink call, and no
// change waits more than 200ms.
const (
	DefaultQuiet    = 20 * time.Millisecond
	DefaultMaxDelay = 200 * time.Millisecond
)

// DefaultViewConfig returns a ViewConfig with the default coalescing; LocalNode is left for the
// caller.
func DefaultViewConfig() ViewConfig {
	return ViewConfig{Quiet: DefaultQuiet, MaxDelay: DefaultMaxDelay}
}

// Validate checks the config, naming the field at fault.
func (c *ViewConfig) Validate() error {
	switch {
	case c.LocalNode == "":
		return fmt.Errorf("%w: LocalNode is empty", ErrInvalidConfig)
	case c.Quiet <= 0:
		return fmt.Errorf("%w: Quiet=%s: must be positive", ErrInvalidConfig, c.Quiet)
	case c.MaxDelay < c.Quiet:
		return fmt.Errorf("%w: MaxDelay=%s: must be at least Quiet=%s", ErrInvalidConfig, c.MaxDelay, c.Quiet)
	}
	return nil
}

// View merges the etcd lease set with gossip claims into the desired peer set. etcd owns subnets:
// every valid lease but the local node's is a peer. Gossip is used for a lease only when the lease
// names the gossip member's node, the member claims the lease's subnet and, when the lease carries
// the node's key, the claim is signed by it for the address the member gossips from; then the
// member's liveness is reported and, for a keyed lease, its attributes (public IP, VTEP MAC)
// replace the lease's when its AttrVersion is higher. An unsigned claim (an older weft) never
// changes attributes: etcd's win. A member that leaves or fails keeps its peer until the lease
// goes. View is also the gossip member's Admitter (see Admit).
//
// The desired set goes to the sink, from Run, when it has changed: once changes pause for Quiet,
// and at the latest MaxDelay after the first change.
type View struct {
	cfg  ViewConfig
	log  *slog.Logger
	sink func([]backend.Peer)
	kick chan struct{}

	mu         sync.Mutex
	haveLeases bool
	// leases holds, per subnet, the oldest lease that validates; rejectedLeases the others.
	leases         map[netip.Prefix]subnet.Lease
	rejectedLeases []rejectedPeer
	// owners holds, per node name, the leases in leases that name it.
	owners map[string][]subnet.Lease
	// verdicts remembers signature checks (see verified).
	verdicts map[[32]byte]error
	local    backend.Local
	// logged holds the rejections logged last, with their details, so that each is logged once.
	logged        map[rejectKey]string
	localSubnet   netip.Prefix
	members       map[string]*viewMember
	rejectedTotal uint64
	sinkCalls     uint64
	sent          []backend.Peer
}

type viewMember struct {
	state  gossip.MemberState
	claim  nodeapi.ClaimStatus
	reason string
}

// NewView returns a view that hands each new desired peer set to sink. sink is called from Run
// only, one call at a time, and owns the slice it gets.
func NewView(cfg ViewConfig, sink func([]backend.Peer)) (*View, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("%w: sink is nil", ErrInvalidConfig)
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return &View{
		cfg:      cfg,
		log:      l.With("component", "gossip-view"),
		sink:     sink,
		kick:     make(chan struct{}, 1),
		leases:   map[netip.Prefix]subnet.Lease{},
		owners:   map[string][]subnet.Lease{},
		verdicts: map[[32]byte]error{},
		logged:   map[rejectKey]string{},
		members:  map[string]*viewMember{},
	}, nil
}

// SetLeases replaces the etcd lease set, the authority on who owns which subnet. The daemon calls
// it with every etcd snapshot. Leases that cannot be programmed (not an IPv4 subnet, attributes
// that do not validate, such as a flannel node with another backend) are left out, and of several
// leases for one subnet the oldest (lowest CreateRevision) is used; the others are rejected,
// logged once and counted. The view keeps no reference to leases.
func (v *View) SetLeases(leases []subnet.Lease) {
	v.mu.Lock()
	set := make(map[netip.Prefix]subnet.Lease, len(leases))
	var rejected []rejectedPeer
	var losers []subnet.Lease
	for _, l := range leases {
		if reason := leaseProblem(&l); reason != "" {
			rejected = append(rejected, leaseRejected(l, backend.ReasonInvalid, reason))
			continue
		}
		l.Attrs.VtepMAC = slices.Clone(l.Attrs.VtepMAC)
		cur, dup := set[l.Subnet]
		switch {
		case !dup:
			set[l.Subnet] = l
		case older(&l, &cur) < 0:
			losers, set[l.Subnet] = append(losers, cur), l
		default:
			losers = append(losers, l)
		}
	}
	for _, l := range losers {
		w := set[l.Subnet]
		rejected = append(rejected, leaseRejected(l, backend.ReasonDuplicate, fmt.Sprintf(
			"the subnet is also leased to %s by an older key (created at revision %d, this one at %d)",
			peerName(&w), w.CreateRevision, l.CreateRevision)))
	}
	owners := make(map[string][]subnet.Lease, len(set))
	for _, l := range set {
		if l.Attrs.NodeName != "" {
			owners[l.Attrs.NodeName] = append(owners[l.Attrs.NodeName], l)
		}
	}
	v.leases, v.rejectedLeases, v.owners, v.haveLeases = set, rejected, owners, true
	for name, m := range v.members {
		v.classify(name, m)
		if m.state.Status != gossip.StatusAlive && !v.owns(name) {
			delete(v.members, name)
		}
	}
	v.mu.Unlock()
	kick(v.kick)
}

func leaseProblem(l *subnet.Lease) string {
	if !l.Subnet.IsValid() || !l.Subnet.Addr().Is4() || l.Subnet.Masked() != l.Subnet {
		return fmt.Sprintf("subnet %s: want a masked IPv4 prefix", prefixString(l.Subnet))
	}
	if err := l.Attrs.Validate(); err != nil {
		return err.Error()
	}
	return ""
}

// SetLocalSubnet tells the view this node's own subnet, never a peer and never claimable by
// another member.
func (v *View) SetLocalSubnet(p netip.Prefix) {
	v.mu.Lock()
	v.localSubnet = p
	for name, m := range v.members {
		v.classify(name, m)
	}
	v.mu.Unlock()
	kick(v.kick)
}

// SetLocal tells the view what this node knows of itself (its addresses, underlay prefixes, pod
// network and VTEP MAC): a peer whose endpoint backend.Local.CheckEndpoint refuses is rejected.
func (v *View) SetLocal(l backend.Local) {
	l.Underlay, l.Addrs, l.VtepMAC = slices.Clone(l.Underlay), slices.Clone(l.Addrs), slices.Clone(l.VtepMAC)
	v.mu.Lock()
	v.local = l
	v.mu.Unlock()
	kick(v.kick)
}

// ObserveMember takes a gossip member event; View is the Member's Observer. Events about the local
// node are ignored.
func (v *View) ObserveMember(s gossip.MemberState) {
	if s.Name == v.cfg.LocalNode {
		return
	}
	v.mu.Lock()
	m := v.members[s.Name]
	if m == nil {
		m = &viewMember{}
		v.members[s.Name] = m
	}
	was := m.state.Status
	m.state = s
	v.classify(s.Name, m)
	switch {
	case s.Status == was:
	case s.Status == gossip.StatusGone && v.owns(s.Name):
		v.log.Info("gossip member of a peer is gone, keeping its routes", "node", s.Name, "addr", s.Addr)
	case was == gossip.StatusGone && v.owns(s.Name):
		v.log.Info("gossip member of a peer is back", "node", s.Name, "addr", s.Addr, "claim", m.claim)
	default:
		v.log.Debug("gossip member", "node", s.Name, "addr", s.Addr, "status", s.Status, "claim", m.claim)
	}
	if s.Status != gossip.StatusAlive && !v.owns(s.Name) {
		delete(v.members, s.Name)
	}
	v.mu.Unlock()
	kick(v.kick)
}

// classify sets the member's claim status and counts a claim that became rejected.
func (v *View) classify(name string, m *viewMember) {
	claim, reason := v.judge(name, m.state)
	if claim == nodeapi.ClaimRejected && (m.claim != nodeapi.ClaimRejected || m.reason != reason) {
		v.rejectedTotal++
		v.log.Warn("gossip subnet claim rejected", "node", name, "addr", m.state.Addr,
			"subnet", m.state.Meta.Subnet, "reason", reason)
	}
	m.claim, m.reason = claim, reason
}

func (v *View) judge(name string, s gossip.MemberState) (nodeapi.ClaimStatus, string) {
	if s.Meta == nil {
		reason := "no meta"
		if s.MetaErr != nil {
			reason = s.MetaErr.Error()
		}
		return nodeapi.ClaimNone, reason
	}
	sn := s.Meta.Subnet
	if s.Meta.NodeName != name {
		return nodeapi.ClaimRejected, fmt.Sprintf("meta names node %q", s.Meta.NodeName)
	}
	if sn == v.localSubnet {
		return nodeapi.ClaimRejected, "subnet is this node's"
	}
	l, ok := v.leases[sn]
	switch {
	case !ok:
		return nodeapi.ClaimPending, "no lease for the subnet yet"
	case l.Attrs.NodeName == "":
		return nodeapi.ClaimRejected, "subnet leased without a node name (written by flannel)"
	case l.Attrs.NodeName != name:
		return nodeapi.ClaimRejected, fmt.Sprintf("subnet leased to %q", l.Attrs.NodeName)
	case l.Attrs.NodeKey != nil:
		if err := v.verifiedClaim(l.Attrs.NodeKey, s.Addr, s.Meta); err != nil {
			return nodeapi.ClaimRejected, err.Error()
		}
	}
	return nodeapi.ClaimUsed, ""
}

// peerInfo is one lease's merged state.
type peerInfo struct {
	peer   backend.Peer
	lease  subnet.Lease
	member *viewMember
	source nodeapi.Source
	live   nodeapi.Liveness
}

// peersLocked merges the leases with the gossip claims and checks the result: it returns the
// peers, sorted by subnet, and the rejected leases, sorted by subnet and age.
func (v *View) peersLocked() ([]peerInfo, []rejectedPeer) {
	out := make([]peerInfo, 0, len(v.leases))
	rejected := slices.Clone(v.rejectedLeases)
	for _, l := range v.leases {
		if (l.Attrs.NodeName != "" && l.Attrs.NodeName == v.cfg.LocalNode) || l.Subnet == v.localSubnet {
			continue
		}
		p := v.mergeLocked(l)
		if err := v.local.CheckEndpoint(p.peer); err != nil {
			rejected = append(rejected, endpointRejected(p, err))
			continue
		}
		out = append(out, p)
	}
	out, rejected = resolveSharedMACs(out, rejected)
	slices.SortFunc(out, func(a, b peerInfo) int { return a.peer.Subnet.Compare(b.peer.Subnet) })
	slices.SortFunc(rejected, func(a, b rejectedPeer) int {
		return cmp.Or(a.lease.Subnet.Compare(b.lease.Subnet), older(&a.lease, &b.lease))
	})
	return out, rejected
}

// mergeLocked is lease l's peer: its attributes are the gossip member's when the member claims
// the lease and advertises a higher AttrVersion.
func (v *View) mergeLocked(l subnet.Lease) peerInfo {
	name := l.Attrs.NodeName
	p := peerInfo{lease: l, source: nodeapi.SourceEtcd, live: nodeapi.LivenessUnknown}
	ip, hw := l.Attrs.PublicIP, l.Attrs.VtepMAC
	if m := v.members[name]; name != "" && m != nil && m.claim == nodeapi.ClaimUsed && m.state.Meta.Subnet == l.Subnet {
		p.member = m
		p.live = nodeapi.LivenessUnreachable
		if m.state.Status == gossip.StatusAlive {
			p.live = nodeapi.LivenessAlive
		}
		if l.Attrs.NodeKey != nil && m.state.Meta.AttrVersion > l.Attrs.AttrVersion {
			p.source = nodeapi.SourceGossip
			ip, hw = m.state.Meta.PublicIP, m.state.Meta.VtepMAC
		}
	}
	p.peer = backend.Peer{Name: peerName(&l), Subnet: l.Subnet, PublicIP: ip, VtepMAC: slices.Clone(hw)}
	return p
}

func peersOf(infos []peerInfo) []backend.Peer {
	out := make([]backend.Peer, len(infos))
	for i, p := range infos {
		out[i] = p.peer
	}
	return out
}

// Run delivers the desired peer set to the sink after changes, coalesced, until ctx is done. The
// first delivery follows the first SetLeases.
func (v *View) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-v.kick:
		}
		deadline := time.Now().Add(v.cfg.MaxDelay)
		t := time.NewTimer(v.cfg.Quiet)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-v.kick:
				t.Reset(min(v.cfg.Quiet, time.Until(deadline)))
			case <-t.C:
				break wait
			}
		}
		v.flush()
	}
}

// flush hands the desired set to the sink if it differs from the last one delivered.
func (v *View) flush() {
	v.mu.Lock()
	if !v.haveLeases {
		v.mu.Unlock()
		return
	}
	infos, rejected := v.peersLocked()
	v.logRejectionsLocked(rejected)
	peers := peersOf(infos)
	if v.sent != nil && slices.EqualFunc(peers, v.sent, peerEqual) {
		v.mu.Unlock()
		return
	}
	v.sent = peers
	v.sinkCalls++
	out := make([]backend.Peer, len(peers))
	for i, p := range peers {
		p.VtepMAC = slices.Clone(p.VtepMAC)
		out[i] = p
	}
	v.mu.Unlock()
	v.sink(out)
}

func peerEqual(a, b backend.Peer) bool {
	return a.Name == b.Name && a.Subnet == b.Subnet && a.PublicIP == b.PublicIP && bytes.Equal(a.VtepMAC, b.VtepMAC)
}

// Snapshot is the view's detail for /debug/peers (the peers' probes aside).
type Snapshot struct {
	Peers    []nodeapi.Peer
	Rejected []nodeapi.RejectedPeer
	Members  []nodeapi.Member
}

// Snapshot returns the peers and the gossip members, sorted by subnet and by name.
func (v *View) Snapshot() Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	var s Snapshot
	infos, rejected := v.peersLocked()
	for _, r := range rejected {
		s.Rejected = append(s.Rejected, r.api())
	}
	for _, p := range infos {
		d := nodeapi.Peer{
			Name: p.peer.Name, Subnet: p.peer.Subnet, PublicIP: p.peer.PublicIP,
			VtepMAC: p.peer.VtepMAC.String(), Source: p.source, Liveness: p.live,
			Etcd: nodeapi.Attrs{
				NodeName: p.lease.Attrs.NodeName, PublicIP: p.lease.Attrs.PublicIP,
				VtepMAC: p.lease.Attrs.VtepMAC.String(), AttrVersion: p.lease.Attrs.AttrVersion,
			},
		}
		if m := p.member; m != nil {
			meta := m.state.Meta
			d.Gossip = &nodeapi.GossipMember{
				Attrs: nodeapi.Attrs{
					NodeName: meta.NodeName, PublicIP: meta.PublicIP, VtepMAC: meta.VtepMAC.String(),
					AttrVersion: meta.AttrVersion,
				},
				Addr: m.state.Addr, Status: apiStatus(m.state.Status), VNI: meta.VNI, MetaFormat: meta.Version,
			}
		}
		s.Peers = append(s.Peers, d)
	}
	for name, m := range v.members {
		d := nodeapi.Member{Name: name, Addr: m.state.Addr, Status: apiStatus(m.state.Status), Claim: m.claim, Reason: m.reason}
		if m.state.Meta != nil {
			d.Subnet = m.state.Meta.Subnet
		}
		s.Members = append(s.Members, d)
	}
	slices.SortFunc(s.Members, func(a, b nodeapi.Member) int { return cmp.Compare(a.Name, b.Name) })
	return s
}

// apiStatus is how /debug/peers shows a member's status.
func apiStatus(s gossip.MemberStatus) nodeapi.MemberStatus {
	if s == gossip.StatusAlive {
		return nodeapi.MemberAlive
	}
	return nodeapi.MemberGone
}

// kick makes a pending signal on a channel of capacity 1, without blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return `""`
	}
	return p.String()
}

// ViewStats is a snapshot of the view's gauges and counters, for metrics.
type ViewStats struct {
	// Peers is the size of the desired set; by attribute source, and by liveness.
	Peers              int
	PeersFromEtcd      int
	PeersFromGossip    int
	PeersAlive         int
	PeersUnreachable   int
	PeersWithoutGossip int
	// InvalidLeases counts leases of the last etcd set that cannot be programmed.
	InvalidLeases int
	// Rejected counts the leases left out, by reason (InvalidLeases among them).
	Rejected map[backend.Reason]int
	// Members counts alive gossip members, the local one aside.
	Members int
	// Current claims by status.
	UsedClaims     int
	PendingClaims  int
	RejectedClaims int
	// RejectedClaimsTotal counts claims that became rejected (a counter).
	RejectedClaimsTotal uint64
	// SinkCalls counts desired sets handed to the sink (a counter).
	SinkCalls uint64
}

// Stats returns the view's current gauges and counters.
func (v *View) Stats() ViewStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := ViewStats{RejectedClaimsTotal: v.rejectedTotal, SinkCalls: v.sinkCalls, Rejected: map[backend.Reason]int{}}
	infos, rejected := v.peersLocked()
	for _, r := range rejected {
		s.Rejected[r.reason]++
	}
	s.InvalidLeases = s.Rejected[backend.ReasonInvalid]
	for _, p := range infos {
		s.Peers++
		switch p.source {
		case nodeapi.SourceEtcd:
			s.PeersFromEtcd++
		case nodeapi.SourceGossip:
			s.PeersFromGossip++
		}
		switch p.live {
		case nodeapi.LivenessAlive:
			s.PeersAlive++
		case nodeapi.LivenessUnreachable:
			s.PeersUnreachable++
		case nodeapi.LivenessUnknown:
			s.PeersWithoutGossip++
		}
	}
	for _, m := range v.members {
		if m.state.Status == gossip.StatusAlive {
			s.Members++
		}
		switch m.claim {
		case nodeapi.ClaimUsed:
			s.UsedClaims++
		case nodeapi.ClaimPending:
			s.PendingClaims++
		case nodeapi.ClaimRejected:
			s.RejectedClaims++
		}
	}
	return s
}
