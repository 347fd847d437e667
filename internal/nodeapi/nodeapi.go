// Package nodeapi is what weftd shows its clients: the health server's address and paths, the
// /debug/peers document, and the names of the iptables chains weftd owns on a node. weftd (package
// daemon) and weftctl both import it, so weftctl needs none of the daemon's code. It imports only
// the standard library.
package nodeapi

import (
	"net/netip"
	"time"
)

// DefaultHealthAddr is weftd's -health-addr default: where it serves the paths below.
const DefaultHealthAddr = "127.0.0.1:9476"

// The health server's paths.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	PathPeers   = "/debug/peers"
)

// The iptables chains weftd owns, jumped to from FORWARD (filter) and POSTROUTING (nat).
const (
	ChainForward = "WEFT-FWD"
	ChainMasq    = "WEFT-POSTRTG"
)

// Peers is the /debug/peers document: the node's peer view, with each peer's data-plane probe.
type Peers struct {
	Node   string `json:"node"`
	Subnet string `json:"subnet,omitempty"`
	Ready  bool   `json:"ready"`
	EtcdUp bool   `json:"etcdUp"`
	Peers  []Peer `json:"peers"`
	// Rejected are the leases that are not programmed, and why.
	Rejected []RejectedPeer `json:"rejected,omitempty"`
	Members  []Member       `json:"members"`
}

// Peer is one peer: what is programmed, and what etcd and gossip each say.
type Peer struct {
	Name     string       `json:"name"`
	Subnet   netip.Prefix `json:"subnet"`
	PublicIP netip.Addr   `json:"publicIP"`
	VtepMAC  string       `json:"vtepMAC"`
	// Source tells which view's attributes are programmed.
	Source   Source        `json:"source"`
	Liveness Liveness      `json:"liveness"`
	Etcd     Attrs         `json:"etcd"`
	Gossip   *GossipMember `json:"gossip,omitempty"`
	// Probe is the last data-plane probe of the peer's VTEP address; nil before the first.
	Probe *Probe `json:"probe,omitempty"`
}

// RejectedPeer is a lease that is not programmed: its data cannot be (Reason "invalid",
// "public-ip", "local-address", "own-vtep-mac", "subnet"), it conflicts with an older lease
// ("duplicate-subnet", "shared-vtep-mac"), or the kernel refused its entries ("kernel-refused").
type RejectedPeer struct {
	Name     string       `json:"name"`
	Subnet   netip.Prefix `json:"subnet"`
	PublicIP netip.Addr   `json:"publicIP"`
	VtepMAC  string       `json:"vtepMAC"`
	// CreateRevision is the etcd revision that created the lease's key; 0 when not known.
	CreateRevision int64  `json:"createRevision,omitempty"`
	Reason         string `json:"reason"`
	Detail         string `json:"detail"`
}

// Attrs is one source's attributes for a peer.
type Attrs struct {
	NodeName    string     `json:"nodeName"`
	PublicIP    netip.Addr `json:"publicIP"`
	VtepMAC     string     `json:"vtepMAC"`
	AttrVersion int64      `json:"attrVersion"`
}

// GossipMember is the gossip member behind a peer.
type GossipMember struct {
	Attrs
	Addr       netip.AddrPort `json:"addr"`
	Status     MemberStatus   `json:"status"`
	VNI        int            `json:"vni"`
	MetaFormat uint8          `json:"metaFormat"`
}

// Member is one gossip member the node knows (itself aside) and what the view made of its claim.
type Member struct {
	Name   string         `json:"name"`
	Addr   netip.AddrPort `json:"addr"`
	Status MemberStatus   `json:"status"`
	// Subnet is the claimed subnet; invalid when the member has no usable meta.
	Subnet netip.Prefix `json:"subnet"`
	Claim  ClaimStatus  `json:"claim"`
	Reason string       `json:"reason,omitempty"`
}

// Probe is the last data-plane probe of a peer's VTEP address.
type Probe struct {
	Reachable bool      `json:"reachable"`
	RTT       string    `json:"rtt,omitempty"`
	At        time.Time `json:"at"`
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

// MemberStatus is a gossip member's state as the document shows it.
type MemberStatus string

// Member states.
const (
	MemberAlive MemberStatus = "alive"
	// MemberGone: the member left or failed (memberlist does not tell the two apart).
	MemberGone MemberStatus = "gone"
)
