package gossip

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/subnet"
)

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

// Source says where a peer's programmed attributes come from.
type Source string

// Peer attribute sources.
const (
	// SourceEtcd: the lease's attributes (no matching gossip member, or the lease is as new).
	SourceEtcd Source = "etcd"
	// SourceGossip: the owner's gossip meta, whose AttrVersion is higher than the lease's.
	SourceGossip Source = "gossip"
)

// Liveness is what gossip knows about a peer's node.
type Liveness string

// Peer liveness values.
const (
	// LivenessAlive: the lease owner is an alive gossip member claiming the lease's subnet.
	LivenessAlive Liveness = "alive"
	// LivenessUnreachable: the lease owner's gossip member is gone (left or failed); its routes
	// stay.
	LivenessUnreachable Liveness = "unreachable"
	// LivenessUnknown: no gossip member vouches for the lease (a flannel node, or gossip down).
	LivenessUnknown Liveness = "unknown"
)

// ClaimStatus is what the view made of a gossip member's claim "node X has subnet S".
type ClaimStatus string

// Claim statuses.
const (
	// ClaimUsed: the etcd lease for S names X.
	ClaimUsed ClaimStatus = "used"
	// ClaimPending: no lease for S yet; the claim waits for etcd.
	ClaimPending ClaimStatus = "pending"
	// ClaimRejected: S is leased to another node, or is this node's subnet, or the meta names
	// another node than the member.
	ClaimRejected ClaimStatus = "rejected"
	// ClaimNone: the member advertises no usable meta.
	ClaimNone ClaimStatus = "none"
)

// View merges the etcd lease set with gossip claims into the desired peer set. etcd owns subnets:
// every valid lease but the local node's is a peer. Gossip is used for a lease only when the lease
// names the gossip member's node and the member claims the lease's subnet; then the member's
// liveness is reported and its attributes (public IP, VTEP MAC) replace the lease's when its
// AttrVersion is higher. A member that leaves or fails keeps its peer until the lease goes.
//
// The desired set goes to the sink, from Run, when it has changed: once changes pause for Quiet,
// and at the latest MaxDelay after the first change.
type View struct {
	cfg  ViewConfig
	log  *slog.Logger
	sink func([]backend.Peer)
	kick chan struct{}

	mu            sync.Mutex
	haveLeases    bool
	leases        map[netip.Prefix]subnet.Lease
	owners        map[string]bool
	invalid       map[netip.Prefix]string
	localSubnet   netip.Prefix
	members       map[string]*viewMember
	rejectedTotal uint64
	sinkCalls     uint64
	sent          []backend.Peer
}

type viewMember struct {
	state  MemberState
	claim  ClaimStatus
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
		cfg:     cfg,
		log:     l.With("component", "gossip-view"),
		sink:    sink,
		kick:    make(chan struct{}, 1),
		leases:  map[netip.Prefix]subnet.Lease{},
		owners:  map[string]bool{},
		invalid: map[netip.Prefix]string{},
		members: map[string]*viewMember{},
	}, nil
}

// SetLeases replaces the etcd lease set, the authority on who owns which subnet. The daemon calls
// it with every etcd snapshot. Leases that cannot be programmed (not an IPv4 subnet, attributes
// that do not validate, such as a flannel node with another backend) are left out, logged once
// and counted. The view keeps no reference to leases.
func (v *View) SetLeases(leases []subnet.Lease) {
	v.mu.Lock()
	set := make(map[netip.Prefix]subnet.Lease, len(leases))
	owners := make(map[string]bool, len(leases))
	invalid := map[netip.Prefix]string{}
	for _, l := range leases {
		if reason := leaseProblem(&l); reason != "" {
			invalid[l.Subnet] = reason
			if v.invalid[l.Subnet] != reason {
				v.log.Warn("lease cannot be programmed, ignoring it", "subnet", prefixString(l.Subnet), "reason", reason)
			}
			continue
		}
		l.Attrs.VtepMAC = slices.Clone(l.Attrs.VtepMAC)
		set[l.Subnet] = l
		if l.Attrs.NodeName != "" {
			owners[l.Attrs.NodeName] = true
		}
	}
	v.leases, v.owners, v.invalid, v.haveLeases = set, owners, invalid, true
	for name, m := range v.members {
		v.classify(name, m)
		if m.state.Status != StatusAlive && !v.owners[name] {
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

// ObserveMember takes a gossip member event; View is the Member's Observer. Events about the local
// node are ignored.
func (v *View) ObserveMember(s MemberState) {
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
	case s.Status == StatusGone && v.owners[s.Name]:
		v.log.Info("gossip member of a peer is gone, keeping its routes", "node", s.Name, "addr", s.Addr)
	case was == StatusGone && v.owners[s.Name]:
		v.log.Info("gossip member of a peer is back", "node", s.Name, "addr", s.Addr, "claim", m.claim)
	default:
		v.log.Debug("gossip member", "node", s.Name, "addr", s.Addr, "status", s.Status, "claim", m.claim)
	}
	if s.Status != StatusAlive && !v.owners[s.Name] {
		delete(v.members, s.Name)
	}
	v.mu.Unlock()
	kick(v.kick)
}

// classify sets the member's claim status and counts a claim that became rejected.
func (v *View) classify(name string, m *viewMember) {
	claim, reason := v.judge(name, m.state)
	if claim == ClaimRejected && (m.claim != ClaimRejected || m.reason != reason) {
		v.rejectedTotal++
		v.log.Warn("gossip subnet claim rejected", "node", name, "addr", m.state.Addr,
			"subnet", m.state.Meta.Subnet, "reason", reason)
	}
	m.claim, m.reason = claim, reason
}

func (v *View) judge(name string, s MemberState) (ClaimStatus, string) {
	if s.Meta == nil {
		reason := "no meta"
		if s.MetaErr != nil {
			reason = s.MetaErr.Error()
		}
		return ClaimNone, reason
	}
	sn := s.Meta.Subnet
	if s.Meta.NodeName != name {
		return ClaimRejected, fmt.Sprintf("meta names node %q", s.Meta.NodeName)
	}
	if sn == v.localSubnet {
		return ClaimRejected, "subnet is this node's"
	}
	l, ok := v.leases[sn]
	switch {
	case !ok:
		return ClaimPending, "no lease for the subnet yet"
	case l.Attrs.NodeName == "":
		return ClaimRejected, "subnet leased without a node name (written by flannel)"
	case l.Attrs.NodeName != name:
		return ClaimRejected, fmt.Sprintf("subnet leased to %q", l.Attrs.NodeName)
	}
	return ClaimUsed, ""
}

// peerInfo is one lease's merged state.
type peerInfo struct {
	peer   backend.Peer
	lease  subnet.Lease
	member *viewMember
	source Source
	live   Liveness
}

// peersLocked merges the leases with the gossip claims, sorted by subnet.
func (v *View) peersLocked() []peerInfo {
	out := make([]peerInfo, 0, len(v.leases))
	for _, l := range v.leases {
		name := l.Attrs.NodeName
		if (name != "" && name == v.cfg.LocalNode) || l.Subnet == v.localSubnet {
			continue
		}
		p := peerInfo{lease: l, source: SourceEtcd, live: LivenessUnknown}
		attrs := struct {
			ip  netip.Addr
			mac net.HardwareAddr
		}{l.Attrs.PublicIP, l.Attrs.VtepMAC}
		if m := v.members[name]; name != "" && m != nil && m.claim == ClaimUsed && m.state.Meta.Subnet == l.Subnet {
			p.member = m
			p.live = LivenessUnreachable
			if m.state.Status == StatusAlive {
				p.live = LivenessAlive
			}
			if m.state.Meta.AttrVersion > l.Attrs.AttrVersion {
				p.source = SourceGossip
				attrs.ip, attrs.mac = m.state.Meta.PublicIP, m.state.Meta.VtepMAC
			}
		}
		if name == "" {
			name = l.Attrs.PublicIP.String()
		}
		p.peer = backend.Peer{Name: name, Subnet: l.Subnet, PublicIP: attrs.ip, VtepMAC: slices.Clone(attrs.mac)}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b peerInfo) int { return comparePrefix(a.peer.Subnet, b.peer.Subnet) })
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// Peers returns the current desired peer set, sorted by subnet; empty before the first SetLeases.
// The daemon uses it for its periodic full resync of the backend.
func (v *View) Peers() []backend.Peer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return peersOf(v.peersLocked())
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
	peers := peersOf(v.peersLocked())
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

// Snapshot is the view's detail for /debug/peers.
type Snapshot struct {
	Peers   []PeerDetail   `json:"peers"`
	Members []MemberDetail `json:"members"`
}

// PeerDetail is one peer: what is programmed, and what etcd and gossip each say.
type PeerDetail struct {
	Name     string       `json:"name"`
	Subnet   netip.Prefix `json:"subnet"`
	PublicIP netip.Addr   `json:"publicIP"`
	VtepMAC  string       `json:"vtepMAC"`
	// Source tells which view's attributes are programmed.
	Source   Source        `json:"source"`
	Liveness Liveness      `json:"liveness"`
	Etcd     AttrDetail    `json:"etcd"`
	Gossip   *GossipDetail `json:"gossip,omitempty"`
}

// AttrDetail is one source's attributes for a peer.
type AttrDetail struct {
	NodeName    string     `json:"nodeName"`
	PublicIP    netip.Addr `json:"publicIP"`
	VtepMAC     string     `json:"vtepMAC"`
	AttrVersion int64      `json:"attrVersion"`
}

// GossipDetail is the gossip member behind a peer.
type GossipDetail struct {
	AttrDetail
	Addr       netip.AddrPort `json:"addr"`
	Status     MemberStatus   `json:"status"`
	VNI        int            `json:"vni"`
	MetaFormat uint8          `json:"metaFormat"`
}

// MemberDetail is one gossip member the view knows (the local one aside) and its claim.
type MemberDetail struct {
	Name   string         `json:"name"`
	Addr   netip.AddrPort `json:"addr"`
	Status MemberStatus   `json:"status"`
	// Subnet is the claimed subnet; invalid when the member has no usable meta.
	Subnet netip.Prefix `json:"subnet"`
	Claim  ClaimStatus  `json:"claim"`
	Reason string       `json:"reason,omitempty"`
}

// Snapshot returns the peers and the gossip members, sorted by subnet and by name.
func (v *View) Snapshot() Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	var s Snapshot
	for _, p := range v.peersLocked() {
		d := PeerDetail{
			Name: p.peer.Name, Subnet: p.peer.Subnet, PublicIP: p.peer.PublicIP,
			VtepMAC: p.peer.VtepMAC.String(), Source: p.source, Liveness: p.live,
			Etcd: AttrDetail{
				NodeName: p.lease.Attrs.NodeName, PublicIP: p.lease.Attrs.PublicIP,
				VtepMAC: p.lease.Attrs.VtepMAC.String(), AttrVersion: p.lease.Attrs.AttrVersion,
			},
		}
		if m := p.member; m != nil {
			meta := m.state.Meta
			d.Gossip = &GossipDetail{
				AttrDetail: AttrDetail{
					NodeName: meta.NodeName, PublicIP: meta.PublicIP, VtepMAC: meta.VtepMAC.String(),
					AttrVersion: meta.AttrVersion,
				},
				Addr: m.state.Addr, Status: m.state.Status, VNI: meta.VNI, MetaFormat: meta.Version,
			}
		}
		s.Peers = append(s.Peers, d)
	}
	for name, m := range v.members {
		d := MemberDetail{Name: name, Addr: m.state.Addr, Status: m.state.Status, Claim: m.claim, Reason: m.reason}
		if m.state.Meta != nil {
			d.Subnet = m.state.Meta.Subnet
		}
		s.Members = append(s.Members, d)
	}
	slices.SortFunc(s.Members, func(a, b MemberDetail) int { return cmp.Compare(a.Name, b.Name) })
	return s
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
	s := ViewStats{InvalidLeases: len(v.invalid), RejectedClaimsTotal: v.rejectedTotal, SinkCalls: v.sinkCalls}
	for _, p := range v.peersLocked() {
		s.Peers++
		switch p.source {
		case SourceEtcd:
			s.PeersFromEtcd++
		case SourceGossip:
			s.PeersFromGossip++
		}
		switch p.live {
		case LivenessAlive:
			s.PeersAlive++
		case LivenessUnreachable:
			s.PeersUnreachable++
		case LivenessUnknown:
			s.PeersWithoutGossip++
		}
	}
	for _, m := range v.members {
		if m.state.Status == StatusAlive {
			s.Members++
		}
		switch m.claim {
		case ClaimUsed:
			s.UsedClaims++
		case ClaimPending:
			s.PendingClaims++
		case ClaimRejected:
			s.RejectedClaims++
		}
	}
	return s
}
