package vxlan

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nstest"
)

// manyPeers returns count peers with /29 subnets from 10.244.2.0 upwards (clear of the test node's
// 10.244.1.0/24), public IPs in 198.51.100.0/24 and distinct MACs; macBase varies the MACs.
func manyPeers(count int, macBase byte) []backend.Peer {
	peers := make([]backend.Peer, count)
	base := netip.MustParseAddr("10.244.2.0").As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8
	for i := range peers {
		v := start + uint32(i)*8
		peers[i] = backend.Peer{
			Name:     fmt.Sprintf("node-%d", i),
			Subnet:   netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 29),
			PublicIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i%250 + 2)}),
			VtepMAC:  net.HardwareAddr{0x02, 0xaa, macBase, byte(i >> 16), byte(i >> 8), byte(i)},
		}
	}
	return peers
}

func benchBackend(b *testing.B) (*node, *Backend) {
	b.Helper()
	nstest.RequireRoot(b)
	n := newNode(b)
	withUnderlay(b, n, "192.0.2.1/24")
	be := newBackend(b, n, testConfig(b))
	if err := be.EnsureDevice(b.Context()); err != nil {
		b.Fatal(err)
	}
	return n, be
}

// countEntries counts weft's entries in the kernel, as Ownership.Dump finds them.
func countEntries(b *testing.B, n *node) int {
	b.Helper()
	o, err := OwnershipOf(n.h, "weft.1", DefaultRouteProtocol)
	if err != nil {
		b.Fatal(err)
	}
	owned, err := o.Dump(n.h)
	if err != nil {
		b.Fatal(err)
	}
	return len(owned.Neigh) + len(owned.FDB) + len(owned.Routes)
}

func setPeers(b *testing.B, be *Backend, peers []backend.Peer) {
	b.Helper()
	if err := be.SetPeers(peers); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkProgramPeers programs N peers from empty (3 N entries) per op.
func BenchmarkProgramPeers(b *testing.B) {
	for _, count := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("peers=%d", count), func(b *testing.B) {
			n, be := benchBackend(b)
			peers := manyPeers(count, 0)
			var writes uint64
			for b.Loop() {
				b.StopTimer()
				setPeers(b, be, nil)
				before := be.Stats().Writes
				b.StartTimer()
				setPeers(b, be, peers)
				b.StopTimer()
				writes += be.Stats().Writes - before
				b.StartTimer()
			}
			if got := countEntries(b, n); got != 3*count {
				b.Fatalf("%d entries in the kernel, want %d", got, 3*count)
			}
			b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
		})
	}
}

// BenchmarkChangeOneMAC changes one peer's MAC with 1,000 peers programmed.
func BenchmarkChangeOneMAC(b *testing.B) {
	_, be := benchBackend(b)
	peers := manyPeers(1000, 0)
	setPeers(b, be, peers)
	macs := []net.HardwareAddr{{0x02, 0xbb, 0, 0, 0, 1}, {0x02, 0xbb, 0, 0, 0, 2}}
	before := be.Stats().Writes
	i := 0
	for b.Loop() {
		peers[500].VtepMAC = macs[i%2]
		i++
		setPeers(b, be, peers)
	}
	b.ReportMetric(float64(be.Stats().Writes-before)/float64(b.N), "writes/op")
}

// BenchmarkResyncUnchanged is the periodic full resync with 1,000 peers and nothing to fix.
func BenchmarkResyncUnchanged(b *testing.B) {
	_, be := benchBackend(b)
	setPeers(b, be, manyPeers(1000, 0))
	before := be.Stats().Writes
	for b.Loop() {
		if err := be.reconcile(backend.TriggerResync); err != nil {
			b.Fatal(err)
		}
	}
	writes := be.Stats().Writes - before
	b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
	if writes != 0 {
		b.Fatalf("resync of unchanged state wrote %d times", writes)
	}
}

// BenchmarkRepairLatency measures, with 1,000 peers and Run active (resync hourly, so repairs are
// event driven), the time from deleting a neighbour entry by hand until the backend restored it.
func BenchmarkRepairLatency(b *testing.B) {
	n, be := benchBackend(b)
	peers := manyPeers(1000, 0)
	setPeers(b, be, peers)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- be.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			b.Error(err)
		}
	}()

	events := make(chan netlink.NeighUpdate, 16384)
	stop := make(chan struct{})
	nsh := n.nsh()
	if err := netlink.NeighSubscribeWithOptions(events, stop, netlink.NeighSubscribeOptions{Namespace: &nsh, ReceiveBufferSize: 8 << 20, ReceiveBufferForceSize: true}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		close(stop)
		drainChan(events)
	}()
	idx := n.link(b, "weft.1").Attrs().Index
	i := 0
	for b.Loop() {
		p := peers[i%len(peers)]
		i++
		gw := p.Subnet.Addr()
		if err := n.h.NeighDel(&netlink.Neigh{LinkIndex: idx, IP: gw.AsSlice()}); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(healDeadline)
	wait:
		for {
			select {
			case u := <-events:
				if a, _ := addrOf(u.IP); u.Type == unix.RTM_NEWNEIGH && a == gw && permanent(u.State) {
					break wait
				}
			case <-deadline:
				b.Fatalf("neighbour %s not restored within %v", gw, healDeadline)
			}
		}
	}
}
