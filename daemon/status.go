package daemon

import "github.com/weft-net/weft/internal/nodeapi"

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
		peersBySource: func() map[string]float64 {
			s := n.view.Stats()
			return map[string]float64{"etcd": float64(s.PeersFromEtcd), "gossip": float64(s.PeersFromGossip)}
		},
		backend: n.be.Stats,
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
