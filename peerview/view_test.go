package peerview

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/gossiptest"
	"github.com/weft-net/weft/internal/poll"
	"github.com/weft-net/weft/subnet"
)

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger logs at level and above to the test log. Register it before anything that logs, so
// its cleanup runs last.
func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func mac(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

// lease is a lease of a weft node, carrying the node's key (gossiptest.NodeKey); without a node
// name, of a node that signs nothing.
func lease(node, sn, ip, hw string, attrVersion int64) subnet.Lease {
	l := subnet.Lease{
		Subnet: netip.MustParsePrefix(sn),
		Attrs: subnet.LeaseAttrs{
			PublicIP: netip.MustParseAddr(ip), BackendType: subnet.BackendVXLAN, VNI: 1, VtepMAC: mac(hw),
			Format: subnet.LeaseFormat, NodeName: node, AttrVersion: attrVersion,
		},
		EtcdLease: 42,
	}
	if node != "" {
		l.Attrs.NodeKey = gossiptest.NodePub(node)
	}
	return l
}

// keyless is l as an older weft wrote it, without a node key.
func keyless(l subnet.Lease) subnet.Lease {
	l.Attrs.NodeKey = nil
	return l
}

func flannelLease(sn, ip, hw string) subnet.Lease {
	l := lease("", sn, ip, hw, 0)
	l.Attrs.Format = 0
	return l
}

// claim is node's member event, its meta signed with node's key for its gossip address ip:7946.
func claim(node string, status gossip.MemberStatus, sn, ip, hw string, attrVersion int64) gossip.MemberState {
	return signedBy(gossiptest.NodeKey(node), node, status, sn, ip, hw, attrVersion)
}

// signedBy is a member event whose meta is signed by key.
func signedBy(key ed25519.PrivateKey, node string, status gossip.MemberStatus, sn, ip, hw string, attrVersion int64) gossip.MemberState {
	m := testMeta(node, sn, ip, hw, attrVersion)
	addr := netip.MustParseAddrPort(ip + ":7946")
	b, err := m.Sign(key, addr)
	if err != nil {
		panic(err)
	}
	parsed, err := gossip.ParseMeta(b)
	if err != nil {
		panic(err)
	}
	return gossip.MemberState{Name: node, Addr: addr, Status: status, Meta: parsed}
}

func renderView(v *View) string {
	var b strings.Builder
	snap := v.Snapshot()
	for _, p := range snap.Peers {
		fmt.Fprintf(&b, "peer %s %s %s %s source=%s liveness=%s\n", p.Subnet, p.Name, p.PublicIP, p.VtepMAC, p.Source, p.Liveness)
	}
	for _, r := range snap.Rejected {
		fmt.Fprintf(&b, "rejected %s %s %s %s rev=%d reason=%s (%s)\n", r.Subnet, r.Name, r.PublicIP, r.VtepMAC, r.CreateRevision, r.Reason, r.Detail)
	}
	for _, m := range snap.Members {
		fmt.Fprintf(&b, "member %s %s %s claim=%s", m.Name, m.Status, prefixString(m.Subnet), m.Claim)
		if m.Reason != "" {
			fmt.Fprintf(&b, " (%s)", m.Reason)
		}
		b.WriteString("\n")
	}
	s := v.Stats()
	for _, r := range backend.Reasons() {
		if n := s.Rejected[r]; n > 0 {
			fmt.Fprintf(&b, "stats rejected[%s]=%d\n", r, n)
		}
	}
	fmt.Fprintf(&b, "stats peers=%d etcd=%d gossip=%d alive=%d unreachable=%d nogossip=%d invalid=%d members=%d used=%d pending=%d rejected=%d rejected_total=%d\n",
		s.Peers, s.PeersFromEtcd, s.PeersFromGossip, s.PeersAlive, s.PeersUnreachable, s.PeersWithoutGossip,
		s.InvalidLeases, s.Members, s.UsedClaims, s.PendingClaims, s.RejectedClaims, s.RejectedClaimsTotal)
	return b.String()
}

func newTestView(t testing.TB, sink func([]backend.Peer)) *View {
	t.Helper()
	cfg := DefaultViewConfig()
	cfg.LocalNode = "local"
	cfg.Logger = testLogger(t, slog.LevelWarn)
	if sink == nil {
		sink = func([]backend.Peer) {}
	}
	v, err := NewView(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testLocal is this node as the daemon describes it: 192.0.2.1/24 and 198.18.0.1/25 on the
// underlay, 192.0.2.77 a secondary address, in pod network 10.244.0.0/16.
var testLocal = backend.Local{
	PodNetwork: netip.MustParsePrefix("10.244.0.0/16"),
	Underlay:   []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("198.18.0.1/25")},
	Addrs:      []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("198.18.0.1")},
	VtepMAC:    mac("02:00:00:00:00:01"),
}

// created is l with the etcd create revision rev.
func created(l subnet.Lease, rev int64) subnet.Lease {
	l.CreateRevision = rev
	return l
}

// The standard lease set: this node, two weft nodes and a flannel node.
var (
	leaseLocal   = lease("local", "10.244.0.0/24", "192.0.2.1", "02:00:00:00:00:01", 10)
	leaseB       = lease("node-b", "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:02", 10)
	leaseC       = lease("node-c", "10.244.3.0/24", "192.0.2.3", "02:00:00:00:00:03", 10)
	leaseFlannel = flannelLease("10.244.9.0/24", "192.0.2.9", "0e:00:00:00:00:09")
	stdLeases    = []subnet.Lease{leaseLocal, leaseB, leaseC, leaseFlannel}
)

func TestViewRules(t *testing.T) {
	type step func(v *View)
	setLeases := func(ls ...subnet.Lease) step { return func(v *View) { v.SetLeases(ls) } }
	observe := func(s gossip.MemberState) step { return func(v *View) { v.ObserveMember(s) } }
	localSubnet := func(p string) step { return func(v *View) { v.SetLocalSubnet(netip.MustParsePrefix(p)) } }
	setLocal := func(v *View) { v.SetLocal(testLocal) }
	tests := []struct {
		name  string
		steps []step
		want  string
	}{{
		name:  "leases without gossip members are peers, the local one is not",
		steps: []step{setLeases(stdLeases...)},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
peer 10.244.3.0/24 node-c 192.0.2.3 02:00:00:00:00:03 source=etcd liveness=unknown
peer 10.244.9.0/24 192.0.2.9 192.0.2.9 0e:00:00:00:00:09 source=etcd liveness=unknown
stats peers=3 etcd=3 gossip=0 alive=0 unreachable=0 nogossip=3 invalid=0 members=0 used=0 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "matching claims report liveness; the higher AttrVersion wins, a tie keeps etcd",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:02", 10)),
			observe(claim("node-c", gossip.StatusAlive, "10.244.3.0/24", "192.0.2.3", "02:00:00:00:00:33", 5)),
			observe(claim("local", gossip.StatusAlive, "10.244.0.0/24", "192.0.2.1", "02:00:00:00:00:01", 10)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=alive
peer 10.244.3.0/24 node-c 192.0.2.3 02:00:00:00:00:03 source=etcd liveness=alive
peer 10.244.9.0/24 192.0.2.9 192.0.2.9 0e:00:00:00:00:09 source=etcd liveness=unknown
member node-b alive 10.244.2.0/24 claim=used
member node-c alive 10.244.3.0/24 claim=used
stats peers=3 etcd=3 gossip=0 alive=2 unreachable=0 nogossip=1 invalid=0 members=2 used=2 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "newer MAC and public IP from gossip apply without etcd",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:22", 11)),
			observe(claim("node-c", gossip.StatusAlive, "10.244.3.0/24", "192.0.2.33", "02:00:00:00:00:03", 12)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:22 source=gossip liveness=alive
peer 10.244.3.0/24 node-c 192.0.2.33 02:00:00:00:00:03 source=gossip liveness=alive
peer 10.244.9.0/24 192.0.2.9 192.0.2.9 0e:00:00:00:00:09 source=etcd liveness=unknown
member node-b alive 10.244.2.0/24 claim=used
member node-c alive 10.244.3.0/24 claim=used
stats peers=3 etcd=1 gossip=2 alive=2 unreachable=0 nogossip=1 invalid=0 members=2 used=2 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "a keyless lease (an older weft) takes liveness from gossip, never attributes",
		steps: []step{
			setLeases(leaseLocal, keyless(leaseB)),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:22", 11)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=alive
member node-b alive 10.244.2.0/24 claim=used
stats peers=1 etcd=1 gossip=0 alive=1 unreachable=0 nogossip=0 invalid=0 members=1 used=1 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "a claim not signed by the lease's key is rejected, the lease's attributes stay",
		steps: []step{
			setLeases(leaseLocal, leaseB),
			observe(signedBy(gossiptest.NodeKey("mallory"), "node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.66", "02:00:00:00:00:66", 1<<40)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
member node-b alive 10.244.2.0/24 claim=rejected (bad gossip meta signature: signed by key 049fd6a92058b172, the lease has key 3713c02cf2e28f96)
stats peers=1 etcd=1 gossip=0 alive=0 unreachable=0 nogossip=1 invalid=0 members=1 used=0 pending=0 rejected=1 rejected_total=1
`,
	}, {
		name: "a newer lease wins over older gossip",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:22", 11)),
			setLeases(leaseLocal, lease("node-b", "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:44", 12)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:44 source=etcd liveness=alive
member node-b alive 10.244.2.0/24 claim=used
stats peers=1 etcd=1 gossip=0 alive=1 unreachable=0 nogossip=0 invalid=0 members=1 used=1 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "spoofed claims are rejected and counted once",
		steps: []step{
			setLeases(stdLeases...),
			localSubnet("10.244.0.0/24"),
			observe(claim("node-x", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.66", "02:00:00:00:00:66", 99)),
			observe(claim("node-x", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.66", "02:00:00:00:00:66", 99)),
			observe(claim("node-y", gossip.StatusAlive, "10.244.9.0/24", "192.0.2.67", "02:00:00:00:00:67", 99)),
			observe(claim("node-z", gossip.StatusAlive, "10.244.0.0/24", "192.0.2.68", "02:00:00:00:00:68", 99)),
			observe(gossip.MemberState{Name: "node-w", Status: gossip.StatusAlive, Meta: func() *gossip.Meta {
				m := testMeta("node-c", "10.244.3.0/24", "192.0.2.69", "02:00:00:00:00:69", 99)
				return &m
			}()}),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
peer 10.244.3.0/24 node-c 192.0.2.3 02:00:00:00:00:03 source=etcd liveness=unknown
peer 10.244.9.0/24 192.0.2.9 192.0.2.9 0e:00:00:00:00:09 source=etcd liveness=unknown
member node-w alive 10.244.3.0/24 claim=rejected (meta names node "node-c")
member node-x alive 10.244.2.0/24 claim=rejected (subnet leased to "node-b")
member node-y alive 10.244.9.0/24 claim=rejected (subnet leased without a node name (written by flannel))
member node-z alive 10.244.0.0/24 claim=rejected (subnet is this node's)
stats peers=3 etcd=3 gossip=0 alive=0 unreachable=0 nogossip=3 invalid=0 members=4 used=0 pending=0 rejected=4 rejected_total=4
`,
	}, {
		name: "a claim without a lease waits for etcd",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-d", gossip.StatusAlive, "10.244.4.0/24", "192.0.2.4", "02:00:00:00:00:04", 10)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
peer 10.244.3.0/24 node-c 192.0.2.3 02:00:00:00:00:03 source=etcd liveness=unknown
peer 10.244.9.0/24 192.0.2.9 192.0.2.9 0e:00:00:00:00:09 source=etcd liveness=unknown
member node-d alive 10.244.4.0/24 claim=pending (no lease for the subnet yet)
stats peers=3 etcd=3 gossip=0 alive=0 unreachable=0 nogossip=3 invalid=0 members=1 used=0 pending=1 rejected=0 rejected_total=0
`,
	}, {
		name: "etcd confirms a pending claim",
		steps: []step{
			observe(claim("node-d", gossip.StatusAlive, "10.244.4.0/24", "192.0.2.4", "02:00:00:00:00:04", 11)),
			setLeases(leaseLocal, lease("node-d", "10.244.4.0/24", "192.0.2.4", "02:00:00:00:00:04", 10)),
		},
		want: `peer 10.244.4.0/24 node-d 192.0.2.4 02:00:00:00:00:04 source=gossip liveness=alive
member node-d alive 10.244.4.0/24 claim=used
stats peers=1 etcd=0 gossip=1 alive=1 unreachable=0 nogossip=0 invalid=0 members=1 used=1 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "members that leave or fail keep their routes until the lease goes",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:22", 11)),
			observe(claim("node-c", gossip.StatusAlive, "10.244.3.0/24", "192.0.2.3", "02:00:00:00:00:03", 10)),
			observe(claim("node-d", gossip.StatusAlive, "10.244.4.0/24", "192.0.2.4", "02:00:00:00:00:04", 10)),
			observe(claim("node-b", gossip.StatusGone, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:22", 11)),
			observe(claim("node-c", gossip.StatusGone, "10.244.3.0/24", "192.0.2.3", "02:00:00:00:00:03", 10)),
			observe(claim("node-d", gossip.StatusGone, "10.244.4.0/24", "192.0.2.4", "02:00:00:00:00:04", 10)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:22 source=gossip liveness=unreachable
peer 10.244.3.0/24 node-c 192.0.2.3 02:00:00:00:00:03 source=etcd liveness=unreachable
peer 10.244.9.0/24 192.0.2.9 192.0.2.9 0e:00:00:00:00:09 source=etcd liveness=unknown
member node-b gone 10.244.2.0/24 claim=used
member node-c gone 10.244.3.0/24 claim=used
stats peers=3 etcd=2 gossip=1 alive=0 unreachable=2 nogossip=1 invalid=0 members=0 used=2 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "a peer goes with its lease, and its failed member with it",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:02", 10)),
			observe(claim("node-b", gossip.StatusGone, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:02", 10)),
			setLeases(leaseLocal, leaseC),
		},
		want: `peer 10.244.3.0/24 node-c 192.0.2.3 02:00:00:00:00:03 source=etcd liveness=unknown
stats peers=1 etcd=1 gossip=0 alive=0 unreachable=0 nogossip=1 invalid=0 members=0 used=0 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "a subnet that changes owner rejects the old owner's claim",
		steps: []step{
			setLeases(stdLeases...),
			observe(claim("node-b", gossip.StatusAlive, "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:22", 11)),
			setLeases(leaseLocal, lease("node-e", "10.244.2.0/24", "192.0.2.5", "02:00:00:00:00:05", 20)),
		},
		want: `peer 10.244.2.0/24 node-e 192.0.2.5 02:00:00:00:00:05 source=etcd liveness=unknown
member node-b alive 10.244.2.0/24 claim=rejected (subnet leased to "node-e")
stats peers=1 etcd=1 gossip=0 alive=0 unreachable=0 nogossip=1 invalid=0 members=1 used=0 pending=0 rejected=1 rejected_total=1
`,
	}, {
		name: "the local subnet is never a peer, whoever the lease names",
		steps: []step{
			setLeases(lease("other", "10.244.0.0/24", "192.0.2.7", "02:00:00:00:00:07", 1), leaseB),
			localSubnet("10.244.0.0/24"),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
stats peers=1 etcd=1 gossip=0 alive=0 unreachable=0 nogossip=1 invalid=0 members=0 used=0 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "leases that cannot be programmed and members without meta",
		steps: []step{
			setLeases(leaseB, func() subnet.Lease {
				l := flannelLease("10.244.8.0/24", "192.0.2.8", "0e:00:00:00:00:08")
				l.Attrs.BackendType = "host-gw"
				return l
			}(), lease("node-f", "10.244.6.1/24", "192.0.2.6", "02:00:00:00:00:06", 1)),
			observe(gossip.MemberState{Name: "node-g", Status: gossip.StatusAlive, MetaErr: fmt.Errorf("%w: member advertises none", gossip.ErrInvalidMeta)}),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
rejected 10.244.6.1/24 node-f 192.0.2.6 02:00:00:00:00:06 rev=0 reason=invalid (subnet 10.244.6.1/24: want a masked IPv4 prefix)
rejected 10.244.8.0/24 192.0.2.8 192.0.2.8 0e:00:00:00:00:08 rev=0 reason=invalid (invalid lease: BackendType="host-gw": weft speaks to "vxlan" nodes only)
member node-g alive "" claim=none (invalid gossip meta: member advertises none)
stats rejected[invalid]=2
stats peers=1 etcd=1 gossip=0 alive=0 unreachable=0 nogossip=1 invalid=2 members=1 used=0 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "endpoints this node cannot tunnel to are rejected, whatever their source",
		steps: []step{
			setLocal,
			setLeases(leaseB,
				lease("bcast", "10.244.4.0/24", "192.0.2.255", "02:00:00:00:00:04", 1),
				lease("net", "10.244.5.0/24", "192.0.2.0", "02:00:00:00:00:05", 1),
				lease("pod", "10.244.6.0/24", "10.244.0.7", "02:00:00:00:00:06", 1),
				lease("second", "10.244.7.0/24", "192.0.2.77", "02:00:00:00:00:07", 1),
				lease("mac", "10.244.8.0/24", "192.0.2.8", "02:00:00:00:00:01", 1),
				lease("sec-bcast", "10.244.10.0/24", "198.18.0.127", "02:00:00:00:00:0a", 1),
				lease("lab", "10.244.11.0/24", "198.18.0.200", "02:00:00:00:00:0b", 1),
				lease("node-c", "10.244.3.0/24", "192.0.2.3", "02:00:00:00:00:03", 1)),
			observe(claim("node-c", gossip.StatusAlive, "10.244.3.0/24", "192.0.2.1", "02:00:00:00:00:03", 2)),
		},
		want: `peer 10.244.2.0/24 node-b 192.0.2.2 02:00:00:00:00:02 source=etcd liveness=unknown
peer 10.244.11.0/24 lab 198.18.0.200 02:00:00:00:00:0b source=etcd liveness=unknown
rejected 10.244.3.0/24 node-c 192.0.2.1 02:00:00:00:00:03 rev=0 reason=local-address (invalid peer: PublicIP 192.0.2.1 is this node's own address (attributes from gossip))
rejected 10.244.4.0/24 bcast 192.0.2.255 02:00:00:00:00:04 rev=0 reason=public-ip (invalid peer: PublicIP 192.0.2.255 is the broadcast address of the underlay prefix 192.0.2.0/24)
rejected 10.244.5.0/24 net 192.0.2.0 02:00:00:00:00:05 rev=0 reason=public-ip (invalid peer: PublicIP 192.0.2.0 is the network address of the underlay prefix 192.0.2.0/24)
rejected 10.244.6.0/24 pod 10.244.0.7 02:00:00:00:00:06 rev=0 reason=public-ip (invalid peer: PublicIP 10.244.0.7 is inside the pod network 10.244.0.0/16)
rejected 10.244.7.0/24 second 192.0.2.77 02:00:00:00:00:07 rev=0 reason=local-address (invalid peer: PublicIP 192.0.2.77 is this node's own address)
rejected 10.244.8.0/24 mac 192.0.2.8 02:00:00:00:00:01 rev=0 reason=own-vtep-mac (invalid peer: VtepMAC 02:00:00:00:00:01 is this node's own)
rejected 10.244.10.0/24 sec-bcast 198.18.0.127 02:00:00:00:00:0a rev=0 reason=public-ip (invalid peer: PublicIP 198.18.0.127 is the broadcast address of the underlay prefix 198.18.0.0/25)
member node-c alive 10.244.3.0/24 claim=used
stats rejected[public-ip]=4
stats rejected[local-address]=2
stats rejected[own-vtep-mac]=1
stats peers=2 etcd=2 gossip=0 alive=0 unreachable=0 nogossip=2 invalid=0 members=1 used=1 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "a shared VTEP MAC stays with the older lease; one node's subnets may share theirs",
		steps: []step{
			setLeases(
				created(lease("newer", "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:99", 1), 900),
				created(lease("older", "10.244.3.0/24", "192.0.2.3", "02:00:00:00:00:99", 1), 300),
				created(lease("older", "10.244.4.0/24", "192.0.2.3", "02:00:00:00:00:99", 1), 500)),
		},
		want: `peer 10.244.3.0/24 older 192.0.2.3 02:00:00:00:00:99 source=etcd liveness=unknown
peer 10.244.4.0/24 older 192.0.2.3 02:00:00:00:00:99 source=etcd liveness=unknown
rejected 10.244.2.0/24 newer 192.0.2.2 02:00:00:00:00:99 rev=900 reason=shared-vtep-mac (VtepMAC 02:00:00:00:00:99 is also used by older (subnet 10.244.3.0/24) at 192.0.2.3, whose lease is older)
stats rejected[shared-vtep-mac]=1
stats peers=2 etcd=2 gossip=0 alive=0 unreachable=0 nogossip=2 invalid=0 members=0 used=0 pending=0 rejected=0 rejected_total=0
`,
	}, {
		name: "of several leases for one subnet the oldest is the peer",
		steps: []step{
			setLeases(
				created(lease("intruder", "10.244.37.0/24", "192.0.2.66", "02:00:00:00:00:66", 9), 700),
				created(lease("owner", "10.244.37.0/24", "192.0.2.37", "02:00:00:00:00:37", 1), 200),
				created(lease("third", "10.244.37.0/24", "192.0.2.38", "02:00:00:00:00:38", 1), 800)),
			observe(claim("intruder", gossip.StatusAlive, "10.244.37.0/24", "192.0.2.66", "02:00:00:00:00:66", 9)),
		},
		want: `peer 10.244.37.0/24 owner 192.0.2.37 02:00:00:00:00:37 source=etcd liveness=unknown
rejected 10.244.37.0/24 intruder 192.0.2.66 02:00:00:00:00:66 rev=700 reason=duplicate-subnet (the subnet is also leased to owner by an older key (created at revision 200, this one at 700))
rejected 10.244.37.0/24 third 192.0.2.38 02:00:00:00:00:38 rev=800 reason=duplicate-subnet (the subnet is also leased to owner by an older key (created at revision 200, this one at 800))
member intruder alive 10.244.37.0/24 claim=rejected (subnet leased to "owner")
stats rejected[duplicate-subnet]=2
stats peers=1 etcd=1 gossip=0 alive=0 unreachable=0 nogossip=1 invalid=0 members=1 used=0 pending=0 rejected=1 rejected_total=1
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestView(t, nil)
			for _, s := range tt.steps {
				s(v)
			}
			if got := renderView(v); got != tt.want {
				t.Fatalf("view:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestViewConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ViewConfig)
		want string
	}{
		{"no local node", func(c *ViewConfig) { c.LocalNode = "" }, "LocalNode is empty"},
		{"no quiet", func(c *ViewConfig) { c.Quiet = 0 }, "Quiet=0s: must be positive"},
		{"max below quiet", func(c *ViewConfig) { c.MaxDelay = time.Millisecond }, "MaxDelay=1ms: must be at least Quiet=20ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultViewConfig()
			c.LocalNode = "local"
			tt.edit(&c)
			if _, err := NewView(c, func([]backend.Peer) {}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// sinkRecorder records the peer sets a view delivers.
type sinkRecorder struct {
	mu    sync.Mutex
	calls [][]backend.Peer
}

func (r *sinkRecorder) sink(p []backend.Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, p)
}

// wait polls until the last delivered set satisfies ok, and returns the number of calls.
func (r *sinkRecorder) wait(t *testing.T, what string, ok func([]backend.Peer) bool) int {
	t.Helper()
	var n int
	waitFor(t, 10*time.Second, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		n = len(r.calls)
		return n > 0 && ok(r.calls[n-1])
	})
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if _, err := poll.Until(context.Background(), what, limit, func() error {
		if !cond() {
			return errors.New("condition false")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func runView(t *testing.T, v *View) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("view Run: %v", err)
		}
	})
}

func TestViewCoalescing(t *testing.T) {
	var rec sinkRecorder
	v := newTestView(t, rec.sink)
	runView(t, v)

	const n = 100
	var leases []subnet.Lease
	for i := range n {
		leases = append(leases, lease(fmt.Sprintf("node-%d", i), fmt.Sprintf("10.244.%d.0/24", i+1),
			fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("02:00:00:00:00:%02x", i+1), 10))
	}
	v.SetLeases(leases)
	before := rec.wait(t, "the lease set", func(p []backend.Peer) bool { return len(p) == n })

	for i := range n {
		v.ObserveMember(claim(fmt.Sprintf("node-%d", i), gossip.StatusAlive, fmt.Sprintf("10.244.%d.0/24", i+1),
			fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("06:00:00:00:00:%02x", i+1), 11))
	}
	after := rec.wait(t, "every gossip MAC", func(p []backend.Peer) bool {
		for _, peer := range p {
			if peer.VtepMAC[0] != 6 {
				return false
			}
		}
		return len(p) == n
	})
	calls := after - before
	t.Logf("%d member events caused %d sink calls", n, calls)
	if calls > 5 {
		t.Fatalf("want a handful of sink calls")
	}
	if got := v.Stats().SinkCalls; got != uint64(after) {
		t.Fatalf("Stats().SinkCalls=%d, the sink saw %d", got, after)
	}

	// Events that change nothing the backend programs do not reach it.
	for i := range n {
		v.ObserveMember(claim(fmt.Sprintf("node-%d", i), gossip.StatusGone, fmt.Sprintf("10.244.%d.0/24", i+1),
			fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("06:00:00:00:00:%02x", i+1), 11))
	}
	v.SetLeases(leases[1:])
	final := rec.wait(t, "the shrunk lease set", func(p []backend.Peer) bool { return len(p) == n-1 })
	if final != after+1 {
		t.Fatalf("%d sink calls after the failures and one lease removal, want 1", final-after)
	}
}

func testMeta(name, sn, ip, hw string, attrVersion int64) gossip.Meta {
	return gossip.Meta{
		NodeName: name, Subnet: netip.MustParsePrefix(sn), PublicIP: netip.MustParseAddr(ip),
		VtepMAC: mac(hw), VNI: 1, AttrVersion: attrVersion,
	}
}
