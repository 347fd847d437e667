package e2e

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

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	"github.com/weft-net/weft/subnet"
)

// TestBadEtcdData is scenario 7, on a network of three subnets with two nodes: a malformed lease
// value is logged and skipped, and its subnet is never handed to a new node; a lease whose subnet
// overlaps the nodes' is logged and never programmed; an invalid config written over the valid one
// leaves the running nodes alone, a restarted node runs on the last good config and a new node
// waits for a valid one. Throughout, the two nodes' pods never lose a ping and their entries for
// each other never change.
func TestBadEtcdData(t *testing.T) {
	l, _ := newLab(t, 0, 0)
	ctx := context.Background()
	etcdPut(t, l, configKey, raceConfig(3))
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
	s1, s2 := env(t, l, n1).Subnet, env(t, l, n2).Subnet
	var free netip.Prefix
	for i := 1; i <= 3; i++ {
		if s := netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", i)); s != s1 && s != s2 {
			free = s
		}
	}
	mac1 := vtepMAC(t, l, n1)
	mac2 := vtepMAC(t, l, n2)
	pairs := []pingPair{podPair(t, l, pods[0], pods[1]), podPair(t, l, pods[1], pods[0]), nodePair(t, l, n1, pods[1])}
	tr := startTraffic(t, pairs...)
	w1 := watchEntries(l, []*lab.Node{n1}, s2, mac2, n2.IP)
	w2 := watchEntries(l, []*lab.Node{n2}, s1, mac1, n1.IP)
	malformedKey := subnetsPrefix + subnet.SubnetKey(free)

	t.Run("malformed lease value", func(t *testing.T) {
		etcdPut(t, l, malformedKey, `{"PublicIP":"198.18.0.99","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"not-a-mac"}}`)
		for _, n := range nodes {
			waitLog(t, n, 10*time.Second, "ignoring malformed lease", malformedKey, "BackendData.VtepMAC")
		}
		n3, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		poll(t, "node3 to give up", 30*time.Second, func() error {
			if _, exited := labtest.WeftdExit(l, n3); !exited {
				return fmt.Errorf("still running")
			}
			return nil
		})
		if code, _ := labtest.WeftdExit(l, n3); code == 0 || !strings.Contains(nodeLog(t, n3), "no free subnet") {
			t.Errorf("node3 exited with code %d; want non-zero, and \"no free subnet\" in its log:\n%s", code, nodeLog(t, n3))
		}
		if v := etcdGet(t, l, malformedKey); !strings.Contains(v, "not-a-mac") {
			t.Errorf("the malformed key's value changed to %q", v)
		}
	})

	t.Run("lease with an overlapping subnet", func(t *testing.T) {
		// Half of node2's subnet: node1 would have to refuse node2 and the ghost together.
		overlap := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, s2.Addr().As4()[2], 128}), 25)
		key := subnetsPrefix + subnet.SubnetKey(overlap)
		t.Cleanup(func() { etcdDelete(t, l, key) })
		etcdPut(t, l, key, `{"PublicIP":"198.18.0.99","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:99:99"},"WeftNode":"ghost","WeftFormat":1}`)
		for _, n := range nodes {
			waitLog(t, n, 10*time.Second, "lease does not fit the network config", overlap.String())
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
		etcdPut(t, l, configKey, `{"Network":"10.244.0.0/16","SubnetLen":40,"Backend":{"Type":"vxlan"}}`)
		if err := l.StopWeftd(n2, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := l.StartWeftd(n2); err != nil {
			t.Fatal(err)
		}
		waitLog(t, n2, 20*time.Second, "running on the last good one", "SubnetLen=40")
		if err := l.WaitReady(ctx, n2, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := env(t, l, n2).Subnet; got != s2 {
			t.Errorf("node2 restarted on %s, want %s", got, s2)
		}
		etcdDelete(t, l, malformedKey)
		n4, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitLog(t, n4, 20*time.Second, "waiting for network config", "reason=invalid", "SubnetLen=40")
		time.Sleep(2 * time.Second)
		if _, exited := labtest.WeftdExit(l, n4); exited {
			t.Fatalf("node4 exited instead of waiting for a valid config:\n%s", nodeLog(t, n4))
		}
		if _, err := l.Env(n4); err == nil {
			t.Errorf("node4 wrote its subnet file without a valid config")
		}
		etcdPut(t, l, configKey, raceConfig(3))
		if err := l.WaitReady(ctx, n4, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := env(t, l, n4).Subnet; got != free {
			t.Errorf("node4 got %s, want the freed %s", got, free)
		}
	})

	time.Sleep(time.Second)
	checkEntries(t, w1, "node1's entries for node2")
	checkEntries(t, w2, "node2's entries for node1")
	checkTraffic(t, tr, pairs[0].name, pairs[1].name, pairs[2].name)
}
