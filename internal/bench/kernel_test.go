package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/vxlan"
)

// TestHandPathAndRouteWatch builds the reference datapath in throwaway namespaces, checks that a
// pod reaches the other node's pod through it at both MTUs, that the route watch sees weft's
// routes come and go (and ignores others), and that the registry removes every namespace.
func TestHandPathAndRouteWatch(t *testing.T) {
	nstest.RequireRoot(t)
	reg, err := newRegistry(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.close(); err != nil {
			t.Error(err)
		}
	})
	hp, err := buildHandPath(reg, fmt.Sprintf("wbt%d-", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	pod1, node1 := hp.ns[hp.pods[0]], hp.ns[hp.nodes[0]]
	t.Run("pod reaches the other node's pod", func(t *testing.T) {
		for i, mtu := range []int{1500, 9000} {
			if err := hp.setMTU(mtu); err != nil {
				t.Fatal(err)
			}
			if err := lab.Ping(pod1, hp.podIP[1], i, 3*time.Second); err != nil {
				t.Errorf("underlay MTU %d: %v", mtu, err)
			}
			var got int
			if err := nsutil.WithHandle(node1, func(h *netlink.Handle) error {
				l, err := h.LinkByName("vx0")
				got = l.Attrs().MTU
				return err
			}); err != nil || got != mtu-subnet.VXLANOverheadIPv4 {
				t.Errorf("underlay MTU %d: VXLAN device MTU %d (%v), want %d", mtu, got, err, mtu-subnet.VXLANOverheadIPv4)
			}
		}
	})
	t.Run("route watch", func(t *testing.T) {
		w, err := watchRoutes(hp.nodes[0], "vx0")
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		ctx := context.Background()
		dst := netip.MustParsePrefix("10.244.9.0/24")
		route := &netlink.Route{Dst: prefixNet(dst), Gw: dst.Addr().AsSlice(), Flags: int(netlink.FLAG_ONLINK),
			Protocol: netlink.RouteProtocol(vxlan.DefaultRouteProtocol)}
		other := &netlink.Route{Dst: prefixNet(netip.MustParsePrefix("10.244.8.0/24")), Gw: dst.Addr().AsSlice(), Flags: int(netlink.FLAG_ONLINK)}
		err = nsutil.WithHandle(node1, func(h *netlink.Handle) error {
			vx, err := h.LinkByName("vx0")
			if err != nil {
				return err
			}
			route.LinkIndex, other.LinkIndex = vx.Attrs().Index, vx.Attrs().Index
			return errors.Join(h.RouteAdd(other), h.RouteAdd(route))
		})
		if err != nil {
			t.Fatal(err)
		}
		has := func(want bool) func(map[netip.Prefix]time.Time) bool {
			return func(seen map[netip.Prefix]time.Time) bool {
				_, ok := seen[dst]
				return ok == want && len(seen) == map[bool]int{true: 1}[want]
			}
		}
		if err := w.wait(ctx, 5*time.Second, has(true)); err != nil {
			t.Fatalf("added route: %v", err)
		}
		if err := w.resync(); err != nil {
			t.Fatal(err)
		}
		if err := w.wait(ctx, time.Second, has(true)); err != nil {
			t.Fatalf("after a resync: %v", err)
		}
		if err := nsutil.WithHandle(node1, func(h *netlink.Handle) error { return h.RouteDel(route) }); err != nil {
			t.Fatal(err)
		}
		if err := w.wait(ctx, 5*time.Second, has(false)); err != nil {
			t.Fatalf("deleted route: %v", err)
		}
		err = w.wait(ctx, 100*time.Millisecond, has(true))
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("waiting for a route that never comes: %v, want ErrTimeout", err)
		}
	})
	if err := reg.close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{hp.ul}, append(hp.nodes[:], hp.pods[:]...)...) {
		if _, err := os.Stat(nsutil.Path(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind: %v", name, err)
		}
	}
}

// TestRecoverRun: a later run removes exactly what a crashed run recorded — its namespace and its
// process, not a process that reuses a recorded PID — and touches nothing without a record.
func TestRecoverRun(t *testing.T) {
	nstest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("wbr%d", os.Getpid()%100000)
	n, err := reg.createNetns(name)
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "600")
	if err := reg.start(n, sleeper); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	// A recorded PID now running something else: this test process.
	reg.mu.Lock()
	reg.rec.Procs = append(reg.rec.Procs, recordedProc{PID: os.Getpid(), Cmdline: "not this process"})
	err = reg.saveLocked()
	reg.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	n.Close() // the run "crashes" here, without close

	if err := recoverRun(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the crashed run's process survived")
	}
	if _, err := os.Stat(nsutil.Path(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the crashed run's namespace survived: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's own, empty directory survived: %v", err)
	}

	stray := t.TempDir()
	keep := filepath.Join(stray, "keep")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recordPath(stray), []byte(`{"Netns":["x"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := recoverRun(stray); err == nil {
		t.Error("recoverRun took a file without the record's kind for a record")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("recoverRun removed what no record names: %v", err)
	}
}
