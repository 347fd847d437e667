package daemon

import (
	"cmp"
	"slices"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nodeapi"
)

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (n *node) gauges() gauges {
	return gauges{
		etcdUp: func() float64 { return boolFloat(n.store.EtcdUp()) },
		ready:  func() float64 { return boolFloat(n.ready() == nil) },
		leaseExpiry: func() float64 {
			if t := n.store.LeaseExpiry(); !t.IsZero() {
				return float64(t.Unix())
			}
			return 0
		},
		gossipMembers:  func() float64 { return float64(n.member.Stats().Members) },
		rejectedClaims: func() float64 { return float64(n.view.Stats().RejectedClaimsTotal) },
		refused:        func() float64 { return float64(n.member.Stats().Refused) },
		peersBySource: func() map[string]float64 {
			s := n.view.Stats()
			return map[string]float64{"etcd": float64(s.PeersFromEtcd), "gossip": float64(s.PeersFromGossip)}
		},
		backend:       n.be.Stats,
		peersRejected: n.peersRejected,
		peerReachable: func() map[string]float64 {
			out := map[string]float64{}
			for name, r := range n.prober.results() {
				out[name] = boolFloat(r.Reachable)
			}
			return out
		},
	}
}

// debugPeers renders /debug/peers for weftctl: per peer, the etcd and gossip views and the probe.
func (n *node) debugPeers() any {
	snap := n.view.Snapshot()
	probes := n.prober.results()
	out := nodeapi.Peers{Node: n.cfg.name, Ready: n.ready() == nil, EtcdUp: n.store.EtcdUp(), Members: snap.Members}
	if l := n.snapshot().lease; l != nil {
		out.Subnet = l.Subnet.String()
	}
	out.Rejected = append(out.Rejected, snap.Rejected...)
	n.mu.Lock()
	for _, r := range n.rejected {
		out.Rejected = append(out.Rejected, nodeapi.RejectedPeer{
			Name: r.peer.Name, Subnet: r.peer.Subnet, PublicIP: r.peer.PublicIP, VtepMAC: r.peer.VtepMAC.String(),
			Reason: string(r.reason()), Detail: r.err.Err.Error(),
		})
	}
	n.mu.Unlock()
	slices.SortFunc(out.Rejected, func(a, b nodeapi.RejectedPeer) int {
		return cmp.Or(a.Subnet.Compare(b.Subnet), cmp.Compare(a.CreateRevision, b.CreateRevision), cmp.Compare(a.Reason, b.Reason))
	})
	for _, p := range snap.Peers {
		if r, ok := probes[p.Name]; ok {
			p.Probe = &nodeapi.Probe{Reachable: r.Reachable, At: r.At}
			if r.Reachable {
				p.Probe.RTT = r.RTT.String()
			}
		}
		out.Peers = append(out.Peers, p)
	}
	return out
}

// peersRejected counts the peers left out, by reason: the view's and the backend's, every reason
// shown.
func (n *node) peersRejected() map[string]float64 {
	out := make(map[string]float64, len(backend.Reasons()))
	for _, r := range backend.Reasons() {
		out[string(r)] = 0
	}
	for r, c := range n.view.Stats().Rejected {
		out[string(r)] += float64(c)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.rejected {
		out[string(r.reason())]++
	}
	return out
}
