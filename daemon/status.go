package daemon

import "github.com/weft-net/weft/internal/nodeapi"

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

// debugPeers renders /debug/peers for weftctl: per peer, the etcd and gossip views and the probe.
func (d *Daemon) debugPeers() any {
	snap := d.view.Snapshot()
	probes := d.prober.results()
	out := nodeapi.Peers{Node: d.cfg.NodeName, Ready: d.ready() == nil, EtcdUp: d.mgr.EtcdUp(), Members: snap.Members}
	if l := d.lease.Load(); l != nil {
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
