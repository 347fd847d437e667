package etcdfault

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
)

// TestBadEtcdData is scenario 7, on a network of three subnets with two nodes: a malformed lease
// value is logged and skipped, and its subnet is never handed to a new node; a lease whose subnet
// overlaps the nodes' is logged and never programmed; an invalid config written over the valid one
// leaves the running nodes alone, a restarted node runs on the last good config and a new node
// waits for a valid one. Throughout, the two nodes' pods never lose a ping and their entries for
// each other never change.
func TestBadEtcdData(t *testing.T) {
	l, _, _ := harness.Start(t, labtest.Spec{})
	ctx := context.Background()
	e2etest.EtcdPut(t, l, e2etest.ConfigKey, e2etest.SubnetsConfig(3))
	var nodes []*lab.Node
	for range 2 {
		n, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := l.WaitReady(ctx, n, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := l.AddPod(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := nodes[0], nodes[1]
	pods := l.State().Pods
	s1, s2 := e2etest.Env(t, l, n1).Subnet, e2etest.Env(t, l, n2).Subnet
	var free netip.Prefix
	for i := 1; i <= 3; i++ {
		if s := netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", i)); s != s1 && s != s2 {
			free = s
		}
	}
	mac1 := e2etest.VTEPMAC(t, l, n1)
	mac2 := e2etest.VTEPMAC(t, l, n2)
	pairs := []e2etest.PingPair{e2etest.PodPair(t, l, pods[0], pods[1]), e2etest.PodPair(t, l, pods[1], pods[0]), e2etest.NodePair(t, l, n1, pods[1])}
	tr := e2etest.StartTraffic(t, pairs...)
	w1 := e2etest.WatchEntries(l, []*lab.Node{n1}, s2, mac2, n2.IP)
	w2 := e2etest.WatchEntries(l, []*lab.Node{n2}, s1, mac1, n1.IP)
	malformedKey := e2etest.LeaseKey(free)

	t.Run("malformed lease value", func(t *testing.T) {
		e2etest.EtcdPut(t, l, malformedKey, `{"PublicIP":"198.18.0.99","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"not-a-mac"}}`)
		for _, n := range nodes {
			e2etest.WaitLog(t, n, 10*time.Second, "ignoring malformed lease", malformedKey, "BackendData.VtepMAC")
		}
		n3, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e2etest.Poll(t, "node3 to give up", 30*time.Second, func() error {
			if _, exited := labtest.WeftdExit(l, n3); !exited {
				return fmt.Errorf("still running")
			}
			return nil
		})
		if code, _ := labtest.WeftdExit(l, n3); code == 0 || !strings.Contains(e2etest.NodeLog(t, n3), "no free subnet") {
			t.Errorf("node3 exited with code %d; want non-zero, and \"no free subnet\" in its log:\n%s", code, e2etest.NodeLog(t, n3))
		}
		if v := e2etest.EtcdGet(t, l, malformedKey); !strings.Contains(v, "not-a-mac") {
			t.Errorf("the malformed key's value changed to %q", v)
		}
	})

	t.Run("lease with an overlapping subnet", func(t *testing.T) {
		// Half of node2's subnet: node1 would have to refuse node2 and the ghost together.
		overlap := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, s2.Addr().As4()[2], 128}), 25)
		key := e2etest.LeaseKey(overlap)
		t.Cleanup(func() { e2etest.EtcdDelete(t, l, key) })
		e2etest.EtcdPut(t, l, key, `{"PublicIP":"198.18.0.99","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:99:99"},"WeftNode":"ghost","WeftFormat":1}`)
		for _, n := range nodes {
			e2etest.WaitLog(t, n, 10*time.Second, "lease does not fit the network config", overlap.String())
		}
		time.Sleep(time.Second)
		for _, n := range nodes {
			if err := l.WithHandle(n, func(h *netlink.Handle) error {
				routes, err := h.RouteList(nil, unix.AF_INET)
				if err != nil {
					return err
				}
				for _, r := range routes {
					if r.Dst != nil && r.Dst.String() == overlap.String() {
						return fmt.Errorf("route %s programmed", r.Dst)
					}
				}
				fdbs, err := h.NeighList(0, unix.AF_BRIDGE)
				if err != nil {
					return err
				}
				for _, f := range fdbs {
					if f.HardwareAddr.String() == "02:00:00:00:99:99" {
						return fmt.Errorf("FDB entry for the overlapping lease's MAC programmed")
					}
				}
				return nil
			}); err != nil {
				t.Errorf("%s: %v", n.Name, err)
			}
		}
	})

	t.Run("invalid config written over a valid one", func(t *testing.T) {
		e2etest.EtcdPut(t, l, e2etest.ConfigKey, `{"Network":"10.244.0.0/16","SubnetLen":40,"Backend":{"Type":"vxlan"}}`)
		if err := l.StopWeftd(n2, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := l.StartWeftd(n2); err != nil {
			t.Fatal(err)
		}
		e2etest.WaitLog(t, n2, 20*time.Second, "running on the last good one", "SubnetLen=40")
		if err := l.WaitReady(ctx, n2, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := e2etest.Env(t, l, n2).Subnet; got != s2 {
			t.Errorf("node2 restarted on %s, want %s", got, s2)
		}
		e2etest.EtcdDelete(t, l, malformedKey)
		n4, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e2etest.WaitLog(t, n4, 20*time.Second, "waiting for network config", "reason=invalid", "SubnetLen=40")
		time.Sleep(2 * time.Second)
		if _, exited := labtest.WeftdExit(l, n4); exited {
			t.Fatalf("node4 exited instead of waiting for a valid config:\n%s", e2etest.NodeLog(t, n4))
		}
		if _, err := l.Env(n4); err == nil {
			t.Errorf("node4 wrote its subnet file without a valid config")
		}
		e2etest.EtcdPut(t, l, e2etest.ConfigKey, e2etest.SubnetsConfig(3))
		if err := l.WaitReady(ctx, n4, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := e2etest.Env(t, l, n4).Subnet; got != free {
			t.Errorf("node4 got %s, want the freed %s", got, free)
		}
	})

	time.Sleep(time.Second)
	e2etest.CheckEntries(t, w1, "node1's entries for node2")
	e2etest.CheckEntries(t, w2, "node2's entries for node1")
	e2etest.CheckTraffic(t, tr, e2etest.Names(pairs)...)
}
