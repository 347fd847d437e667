package daemon

import (
	"time"

	"github.com/weft-net/weft/gossip"
)

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *Daemon) gauges() gauges {
	return gauges{
		etcdUp: func() float64 { return boolFloat(d.mgr.EtcdUp()) },
		ready:  func() float64 { return boolFloat(d.ready() == nil) },
		leaseExpiry: func() float64 {
			if t := d.mgr.LeaseExpiry(); !t.IsZero() {
				return float64(t.Unix())
			}
			return 0
		},
		gossipMembers:  func() float64 { return float64(d.member.Stats().Members) },
		rejectedClaims: func() float64 { return float64(d.view.Stats().RejectedClaimsTotal) },
		peersBySource: func() map[string]float64 {
			s := d.view.Stats()
			return map[string]float64{"etcd": float64(s.PeersFromEtcd), "gossip": float64(s.PeersFromGossip)}
		},
		peerReachable: func() map[string]float64 {
			out := map[string]float64{}
			for name, r := range d.prober.results() {
				out[name] = boolFloat(r.Reachable)
			}
			return out
		},
	}
}

// DebugPeer is one peer in /debug/peers: the view's detail plus the data-plane probe.
type DebugPeer struct {
	gossip.PeerDetail
	Probe *DebugProbe `json:"probe,omitempty"`
}

// DebugProbe is the last data-plane probe of a peer's VTEP address.
type DebugProbe struct {
	Reachable bool      `json:"reachable"`
	RTT       string    `json:"rtt,omitempty"`
	At        time.Time `json:"at"`
}

// DebugPeers is the /debug/peers document that weftctl reads.
type DebugPeers struct {
	Node    string                `json:"node"`
	Subnet  string                `json:"subnet,omitempty"`
	Ready   bool                  `json:"ready"`
	EtcdUp  bool                  `json:"etcdUp"`
	Peers   []DebugPeer           `json:"peers"`
	Members []gossip.MemberDetail `json:"members"`
}

// debugPeers renders /debug/peers for weftctl: per peer, the etcd and gossip views and the probe.
func (d *Daemon) debugPeers() any {
	snap := d.view.Snapshot()
	probes := d.prober.results()
	out := DebugPeers{Node: d.cfg.NodeName, Ready: d.ready() == nil, EtcdUp: d.mgr.EtcdUp(), Members: snap.Members}
	if l := d.lease.Load(); l != nil {
		out.Subnet = l.Subnet.String()
	}
	for _, p := range snap.Peers {
		dp := DebugPeer{PeerDetail: p}
		if r, ok := probes[p.Name]; ok {
			dp.Probe = &DebugProbe{Reachable: r.Reachable, At: r.At}
			if r.Reachable {
				dp.Probe.RTT = r.RTT.String()
			}
		}
		out.Peers = append(out.Peers, dp)
	}
	return out
}
