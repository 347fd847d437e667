package vxlan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nstest"
)

var (
	peerA   = peer("a", "10.244.2.0/24", "198.51.100.2", "02:aa:00:00:00:02")
	peerA2  = peer("a", "10.244.2.0/24", "198.51.100.2", "02:aa:00:00:00:22")  // new MAC
	peerA3  = peer("a", "10.244.2.0/24", "198.51.100.12", "02:aa:00:00:00:22") // new public IP
	peerB   = peer("b", "10.244.3.0/24", "198.51.100.3", "02:aa:00:00:00:03")
	peerC   = peer("c", "10.244.4.0/24", "192.0.2.4", "02:aa:00:00:00:04") // on the underlay subnet
	peerD1  = peer("d1", "10.244.5.0/24", "198.51.100.5", "02:aa:00:00:00:05")
	peerD2  = peer("d2", "10.244.5.0/24", "198.51.100.6", "02:aa:00:00:00:06")  // same subnet as d1
	peerOwn = peer("own", "10.244.1.0/25", "198.51.100.7", "02:aa:00:00:00:07") // inside our subnet
	peerMC  = peer("mc", "10.244.8.0/24", "198.51.100.8", "03:aa:00:00:00:08")  // multicast MAC
	peerNil = backend.Peer{Name: "nil", Subnet: netip.MustParsePrefix("10.244.9.0/24"), PublicIP: netip.MustParseAddr("198.51.100.9")}
)

// foreignRoute is a route on the device that weft does not own; every state must keep it.
const foreignRoute = "route 10.244.99.0/24 dev weft.1 scope link proto 4\n"

// stateSteps are desired peer sets with the kernel state each must produce (DirectRouting on).
var stateSteps = []struct {
	name        string
	peers       []backend.Peer
	wantInvalid int
	want        string
}{
	{name: "empty", want: ""},
	{name: "one peer", peers: []backend.Peer{peerA}, want: `
fdb 02:aa:00:00:00:02 dst 198.51.100.2
neigh 10.244.2.0 lladdr 02:aa:00:00:00:02
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
`},
	{name: "tunnel and direct peers", peers: []backend.Peer{peerA, peerB, peerC}, want: `
fdb 02:aa:00:00:00:02 dst 198.51.100.2
fdb 02:aa:00:00:00:03 dst 198.51.100.3
neigh 10.244.2.0 lladdr 02:aa:00:00:00:02
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
route 10.244.4.0/24 via 192.0.2.4 dev u0 proto 87 metric 2222
`},
	{name: "MAC changed, direct peer removed", peers: []backend.Peer{peerA2, peerB}, want: `
fdb 02:aa:00:00:00:03 dst 198.51.100.3
fdb 02:aa:00:00:00:22 dst 198.51.100.2
neigh 10.244.2.0 lladdr 02:aa:00:00:00:22
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
`},
	{name: "public IP changed", peers: []backend.Peer{peerA3, peerB}, want: `
fdb 02:aa:00:00:00:03 dst 198.51.100.3
fdb 02:aa:00:00:00:22 dst 198.51.100.12
neigh 10.244.2.0 lladdr 02:aa:00:00:00:22
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
`},
	{name: "invalid peers rejected, valid one kept", peers: []backend.Peer{peerOwn, peerB, peerMC, peerNil}, wantInvalid: 3, want: `
fdb 02:aa:00:00:00:03 dst 198.51.100.3
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
`},
	{name: "duplicate subnets both rejected", peers: []backend.Peer{peerD1, peerA, peerD2}, wantInvalid: 2, want: `
fdb 02:aa:00:00:00:02 dst 198.51.100.2
neigh 10.244.2.0 lladdr 02:aa:00:00:00:02
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
`},
	{name: "all removed", want: ""},
}

// leafErrors flattens the errors.Join trees in err into their leaves.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var leaves []error
	for _, e := range j.Unwrap() {
		leaves = append(leaves, leafErrors(e)...)
	}
	return leaves
}

// countInvalid counts the errors in err that wrap backend.ErrInvalidPeer and reports any other.
func countInvalid(t *testing.T, err error) int {
	t.Helper()
	n := 0
	for _, e := range leafErrors(err) {
		if !errors.Is(e, backend.ErrInvalidPeer) {
			t.Errorf("unexpected non-peer error: %v", e)
			continue
		}
		n++
	}
	return n
}

func TestStateTable(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	cfg := testConfig(t)
	cfg.DirectRouting = true
	b := newBackend(t, n, cfg)
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	addForeignRoute(t, n, "weft.1", "10.244.99.0/24")

	apply := func(t *testing.T, i int) {
		t.Helper()
		step := stateSteps[i]
		err := b.SetPeers(step.peers)
		if got := countInvalid(t, err); got != step.wantInvalid {
			t.Errorf("step %q: %d invalid-peer errors, want %d (err: %v)", step.name, got, step.wantInvalid, err)
		}
		want := step.want
		if len(want) > 0 {
			want = want[1:]
		}
		if diff := textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), sortedLines(want+foreignRoute)); diff != "" {
			t.Fatalf("step %q:\n%s", step.name, diff)
		}
	}

	for i := range stateSteps {
		apply(t, i)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random order seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 3 {
		for _, i := range rng.Perm(len(stateSteps)) {
			apply(t, i)
		}
	}
}

func TestForeignRouteToPeerSubnet(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	b := newBackend(t, n, testConfig(t))
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Foreign routes to both peers' subnets: one that shadows weft's route (metric 0) and one that
	// holds weft's exact key (same metric), which weft must not replace.
	addForeignRoute(t, n, "weft.1", "10.244.2.0/24")
	_, dst, _ := net.ParseCIDR("10.244.3.0/24")
	if err := n.h.RouteAdd(&netlink.Route{LinkIndex: n.link(t, "u0").Attrs().Index, Dst: dst, Gw: net.ParseIP("192.0.2.254"),
		Priority: routeMetric(netip.MustParsePrefix("10.244.3.0/24")), Protocol: unix.RTPROT_BOOT}); err != nil {
		t.Fatal(err)
	}
	err := b.SetPeers([]backend.Peer{peerA, peerB})
	errs := leafErrors(err)
	if len(errs) != 2 || !errors.Is(errs[0], ErrRouteConflict) || !errors.Is(errs[1], ErrRouteConflict) {
		t.Fatalf("SetPeers = %v, want two ErrRouteConflict", err)
	}
	want := `fdb 02:aa:00:00:00:02 dst 198.51.100.2
fdb 02:aa:00:00:00:03 dst 198.51.100.3
neigh 10.244.2.0 lladdr 02:aa:00:00:00:02
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.2.0/24 dev weft.1 scope link proto 4
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
`
	if diff := textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), want); diff != "" {
		t.Fatal(diff)
	}
	routes, err := n.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
	if err != nil || len(routes) != 1 || routes[0].Protocol != unix.RTPROT_BOOT || !routes[0].Gw.Equal(net.ParseIP("192.0.2.254")) {
		t.Fatalf("foreign route to %s changed: %v %v", dst, routes, err)
	}
}

// TestKernelRefusedPeerSkippedAlone: a peer whose entries the kernel refuses (here a direct route
// the kernel calls "Nexthop has invalid gateway") is
// reported as that peer's ErrRefusedPeer and left out; the other peers are programmed, and the
// reconciles that follow neither retry nor fail. The peer's PublicIP is the broadcast address of a
// secondary underlay prefix, which the backend, knowing the primary one only, takes for a host.
func TestKernelRefusedPeerSkippedAlone(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	n.addAddr(t, "u0", "192.0.2.65/26")
	cfg := testConfig(t)
	cfg.DirectRouting = true
	b := newBackend(t, n, cfg)
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	bad := peer("bad", "10.244.6.0/24", "192.0.2.127", "02:aa:00:00:00:06")
	err := b.SetPeers([]backend.Peer{peerA, bad, peerC})
	errs := leafErrors(err)
	var pe *backend.PeerError
	if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Peer != "bad" || pe.Reason != backend.ReasonKernel ||
		!errors.Is(errs[0], backend.ErrRefusedPeer) || !errors.Is(errs[0], unix.EINVAL) || !pe.Isolated() {
		t.Fatalf("SetPeers = %v, want one ErrRefusedPeer (EINVAL) of peer bad", err)
	}
	want := `fdb 02:aa:00:00:00:02 dst 198.51.100.2
neigh 10.244.2.0 lladdr 02:aa:00:00:00:02
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
route 10.244.4.0/24 via 192.0.2.4 dev u0 proto 87 metric 2222
`
	if diff := textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), want); diff != "" {
		t.Fatal(diff)
	}
	writes := b.Stats().Writes
	if err := b.reconcile(backend.TriggerResync); err != nil {
		t.Fatalf("resync after the refusal = %v, want nil", err)
	}
	if st := b.Stats(); st.Failures != 0 || st.Writes != writes {
		t.Fatalf("after the resync: %d failures, %d writes (was %d): want none, and no retry of the refused peer", st.Failures, st.Writes, writes)
	}
	// The next peer set tries the peer again: once it is valid, it is programmed.
	fixed := peer("bad", "10.244.6.0/24", "192.0.2.6", "02:aa:00:00:00:06")
	if err := b.SetPeers([]backend.Peer{peerA, fixed, peerC}); err != nil {
		t.Fatalf("SetPeers with the peer fixed = %v", err)
	}
	if got := renderPeers(t, n, "weft.1", DefaultRouteProtocol); !strings.Contains(got, "route 10.244.6.0/24 via 192.0.2.6 dev u0") {
		t.Fatalf("fixed peer not programmed:\n%s", got)
	}
}

// TestLocalFacts: every address of the node counts, and every prefix of the underlay link.
func TestLocalFacts(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	n.addAddr(t, "u0", "192.0.2.65/26")
	n.addAddr(t, "u1", "203.0.113.9/24")
	u, err := FindUnderlay(n.h, "u0", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := LocalFacts(n.h, u)
	if err != nil {
		t.Fatal(err)
	}
	addrs := fmt.Sprint(l.Addrs)
	for _, want := range []string{"127.0.0.1", "192.0.2.1", "192.0.2.65", "203.0.113.9"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("addresses %s lack %s", addrs, want)
		}
	}
	if got := fmt.Sprint(l.Underlay); got != "[192.0.2.0/24 192.0.2.64/26]" {
		t.Errorf("underlay prefixes %s, want [192.0.2.0/24 192.0.2.64/26]", got)
	}
}
