package vxlan

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nstest"
)

// healDeadline is the generous bound for self-healing in tests; the benchmark reports real latency.
const healDeadline = 5 * time.Second

// runBackend runs b.Run until the test ends and checks that Run then returns nil.
func runBackend(t *testing.T, b *Backend) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

func TestSelfHeal(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	b := newBackend(t, n, testConfig(t)) // resync every hour: repairs below are event driven
	runBackend(t, b)
	if err := b.SetPeers([]backend.Peer{peerA, peerB}); err != nil {
		t.Fatal(err)
	}
	addForeignRoute(t, n, "weft.1", "10.244.99.0/24")
	want := sortedLines(`fdb 02:aa:00:00:00:02 dst 198.51.100.2
fdb 02:aa:00:00:00:03 dst 198.51.100.3
neigh 10.244.2.0 lladdr 02:aa:00:00:00:02
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
` + foreignRoute)
	converged := func() string { return textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), want) }
	eventually(t, healDeadline, "initial state", converged)

	dev := func() int { return n.link(t, "weft.1").Attrs().Index }
	mustDo := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, stray, _ := net.ParseCIDR("10.244.77.0/24")
	damage := []struct {
		name string
		do   func()
	}{
		{"neighbour deleted", func() {
			mustDo("delete neigh", n.h.NeighDel(&netlink.Neigh{LinkIndex: dev(), IP: net.ParseIP("10.244.2.0")}))
		}},
		{"neighbour changed", func() {
			mustDo("change neigh", n.h.NeighSet(&netlink.Neigh{LinkIndex: dev(), IP: net.ParseIP("10.244.3.0"), State: netlink.NUD_PERMANENT,
				HardwareAddr: net.HardwareAddr{2, 0xbb, 0, 0, 0, 1}}))
		}},
		{"fdb deleted", func() {
			mustDo("delete fdb", n.h.NeighDel(&netlink.Neigh{LinkIndex: dev(), Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
				IP: net.ParseIP("198.51.100.3").To4(), HardwareAddr: net.HardwareAddr{2, 0xaa, 0, 0, 0, 3}}))
		}},
		{"fdb redirected", func() {
			mustDo("change fdb", n.h.NeighSet(&netlink.Neigh{LinkIndex: dev(), Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
				IP: net.ParseIP("198.51.100.66").To4(), HardwareAddr: net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}}))
		}},
		{"route deleted", func() {
			_, dst, _ := net.ParseCIDR("10.244.2.0/24")
			mustDo("delete route", n.h.RouteDel(&netlink.Route{LinkIndex: dev(), Dst: dst}))
		}},
		{"stray permanent neighbour added", func() {
			mustDo("add neigh", n.h.NeighAdd(&netlink.Neigh{LinkIndex: dev(), IP: net.ParseIP("10.244.77.0"), State: netlink.NUD_PERMANENT,
				HardwareAddr: net.HardwareAddr{2, 0xbb, 0, 0, 0, 2}}))
		}},
		{"stray weft route added", func() {
			mustDo("add route", n.h.RouteAdd(&netlink.Route{LinkIndex: dev(), Dst: stray, Scope: netlink.SCOPE_LINK, Protocol: DefaultRouteProtocol}))
		}},
	}
	for _, d := range damage {
		d.do()
		took := eventually(t, healDeadline, d.name, converged)
		t.Logf("%s: repaired in %v", d.name, took)
	}

	// A removed peer's entries go; the foreign route stays.
	if err := b.SetPeers([]backend.Peer{peerB}); err != nil {
		t.Fatal(err)
	}
	want = sortedLines(`fdb 02:aa:00:00:00:03 dst 198.51.100.3
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
` + foreignRoute)
	if diff := converged(); diff != "" {
		t.Fatalf("after removing peer a:\n%s", diff)
	}

	// A downed device comes back up with every entry; the kernel drops the foreign route with it.
	want = sortedLines(`fdb 02:aa:00:00:00:03 dst 198.51.100.3
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
`)
	wantDevice := renderDevice(t, n, "weft.1")
	deviceBack := func() string {
		if diff := textDiff(renderDevice(t, n, "weft.1")+"\n", wantDevice+"\n"); diff != "" {
			return diff
		}
		return converged()
	}
	mustDo("set down", n.h.LinkSetDown(n.link(t, "weft.1")))
	took := eventually(t, healDeadline, "device set down", deviceBack)
	t.Logf("device down: repaired in %v", took)

	// A deleted device is recreated with the same MAC and every peer replayed.
	mustDo("delete device", n.h.LinkDel(n.link(t, "weft.1")))
	took = eventually(t, healDeadline, "device deleted", deviceBack)
	t.Logf("device deleted: repaired in %v", took)
	st := b.Stats()
	if st.DeviceCreates != 2 {
		t.Fatalf("DeviceCreates = %d, want 2 (initial + after deletion)", st.DeviceCreates)
	}
	// Every repair above was the loop's, on a kernel event: the hourly resync never ran.
	if r := st.Reconciles; r[backend.TriggerSetPeers] != 2 || r[backend.TriggerResync] != 0 || r[backend.TriggerEvent] < 3 {
		t.Fatalf("reconciles by trigger %v, want 2 set-peers, 0 resyncs and an event reconcile per repair", r)
	}
}

func TestRunTwice(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	b := newBackend(t, n, testConfig(t))
	runBackend(t, b)
	eventually(t, healDeadline, "first Run active", func() string {
		if b.Stats().LoopReconciles() == 0 {
			return "no reconcile yet"
		}
		return ""
	})
	if err := b.Run(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestConcurrentSetPeers(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	cfg := testConfig(t)
	cfg.ResyncInterval = 20 * time.Millisecond
	cfg.Debounce = time.Millisecond
	b := newBackend(t, n, cfg)
	runBackend(t, b)
	sets := [][]backend.Peer{{peerA}, {peerB}, {peerA2, peerB}, {}}
	done := make(chan error, 2)
	for w := range 2 {
		go func() {
			var errs []error
			for i := range 50 {
				errs = append(errs, b.SetPeers(sets[(i+w)%len(sets)]))
			}
			done <- errors.Join(errs...)
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetPeers([]backend.Peer{peerA2, peerB}); err != nil {
		t.Fatal(err)
	}
	want := sortedLines(`fdb 02:aa:00:00:00:03 dst 198.51.100.3
fdb 02:aa:00:00:00:22 dst 198.51.100.2
neigh 10.244.2.0 lladdr 02:aa:00:00:00:22
neigh 10.244.3.0 lladdr 02:aa:00:00:00:03
route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652
route 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink proto 87 metric 2161
`)
	if diff := textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), want); diff != "" {
		t.Fatal(diff)
	}
}

func TestWritesOnlyDifferences(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	b := newBackend(t, n, testConfig(t))
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	peers := manyPeers(100, 0)
	steps := []struct {
		name   string
		change func()
		writes uint64
	}{
		{"program 100 peers", func() {}, 300},
		{"unchanged", func() {}, 0},
		{"one MAC changed", func() { peers[7].VtepMAC = net.HardwareAddr{2, 0xcc, 0, 0, 0, 7} }, 3},
		{"one public IP changed", func() { peers[8].PublicIP = peers[8].PublicIP.Next() }, 1},
		{"one peer removed", func() { peers = peers[1:] }, 3},
		{"one peer added", func() { peers = append(peers, manyPeers(101, 0)[100]) }, 3},
	}
	for _, s := range steps {
		s.change()
		before := b.Stats().Writes
		if err := b.SetPeers(peers); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := b.Stats().Writes - before; got != s.writes {
			t.Errorf("%s: %d netlink writes, want %d", s.name, got, s.writes)
		}
	}
}

func TestPeriodicResyncRepairs(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	cfg := testConfig(t)
	cfg.Debounce = time.Hour // events never get through: only the resync can repair
	cfg.ResyncInterval = 100 * time.Millisecond
	b := newBackend(t, n, cfg)
	runBackend(t, b)
	if err := b.SetPeers([]backend.Peer{peerA}); err != nil {
		t.Fatal(err)
	}
	want := renderPeers(t, n, "weft.1", DefaultRouteProtocol)
	eventually(t, healDeadline, "the loop's first reconcile", func() string {
		if b.Stats().LoopReconciles() == 0 {
			return "none yet"
		}
		return ""
	})
	b.mu.Lock() // the loop's first reconcile counts when it starts: wait until it is done
	b.mu.Unlock()
	_, dst, _ := net.ParseCIDR("10.244.2.0/24")
	if err := n.h.RouteDel(&netlink.Route{LinkIndex: n.link(t, "weft.1").Attrs().Index, Dst: dst}); err != nil {
		t.Fatal(err)
	}
	eventually(t, healDeadline, "route deleted", func() string {
		return textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), want)
	})
	if r := b.Stats().Reconciles; r[backend.TriggerResync] == 0 || r[backend.TriggerEvent] != 1 {
		t.Fatalf("reconciles by trigger %v, want the repair from a resync (events only start the loop)", r)
	}
}

// TestRestartKeepsPeers: a new Backend (a restarted daemon) that runs before it is given the peer
// set must keep the entries the kernel holds, and converge once SetPeers comes.
func TestRestartKeepsPeers(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	cfg := testConfig(t)
	first := newBackend(t, n, cfg)
	if err := first.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	peers := []backend.Peer{
		peer("node-2", "10.244.2.0/24", "192.0.2.2", "0e:00:00:00:00:02"),
		peer("node-3", "10.244.3.0/24", "192.0.2.3", "0e:00:00:00:00:03"),
	}
	if err := first.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	want := renderPeers(t, n, first.cfg.Device, DefaultRouteProtocol)
	restarted := newBackend(t, n, cfg)
	runBackend(t, restarted)
	eventually(t, healDeadline, "first reconcile of the restarted backend", func() string {
		if restarted.Stats().LoopReconciles() == 0 {
			return "no reconcile yet"
		}
		return ""
	})
	if got := renderPeers(t, n, first.cfg.Device, DefaultRouteProtocol); got != want {
		t.Fatalf("restarted backend changed the peers before SetPeers:\n%s", textDiff(got, want))
	}
	if err := restarted.SetPeers(peers[:1]); err != nil {
		t.Fatal(err)
	}
	if got := renderPeers(t, n, first.cfg.Device, DefaultRouteProtocol); strings.Contains(got, "10.244.3.0") {
		t.Errorf("removed peer still programmed:\n%s", got)
	}
}

// TestRestartWithNewMACKeepsPeers: a restarted backend whose VTEP MAC changed (its MAC file was
// replaced) sets the new MAC, which makes the kernel flush the device's neighbours; before it is given
// the peer set it must put back every entry the kernel held.
func TestRestartWithNewMACKeepsPeers(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	cfg := testConfig(t)
	first := newBackend(t, n, cfg)
	if err := first.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := first.SetPeers([]backend.Peer{
		peer("node-2", "10.244.2.0/24", "192.0.2.2", "0e:00:00:00:00:02"),
		peer("node-3", "10.244.3.0/24", "192.0.2.3", "0e:00:00:00:00:03"),
	}); err != nil {
		t.Fatal(err)
	}
	want := renderPeers(t, n, first.cfg.Device, DefaultRouteProtocol)
	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x0a, 0x01}
	if err := writeMACFile(macFile(cfg.StateDir, first.cfg.Device), newMAC); err != nil {
		t.Fatal(err)
	}
	restarted := newBackend(t, n, cfg)
	if err := restarted.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := n.link(t, first.cfg.Device).Attrs().HardwareAddr.String(); got != newMAC.String() {
		t.Fatalf("device MAC %s, want %s", got, newMAC)
	}
	if got := renderPeers(t, n, first.cfg.Device, DefaultRouteProtocol); got != want {
		t.Fatalf("peers after the MAC change, before SetPeers:\n%s", textDiff(got, want))
	}
}
