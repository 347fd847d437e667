package tamper

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
)

// rulesInterval is the rules check period the tampering scenario runs weftd with.
const rulesInterval = time.Second

// TestTampering is scenario 5: a neighbour, an FDB entry, a route, the VXLAN device and iptables
// rules deleted by hand on node1 are restored, the kernel entries by the event-driven reconcile
// (goal < 1 s), the rules by the periodic check (-rules-interval 1s).
func TestTampering(t *testing.T) { tampering(t, 1) }

// TestSoakTampering repeats scenario 5 twenty times.
func TestSoakTampering(t *testing.T) {
	e2etest.RequireSoak(t)
	tampering(t, 20)
}

func tampering(t *testing.T, rounds int) {
	l, nodes, pods := harness.Start(t, labtest.Spec{Nodes: 2, Pods: 1, Extra: []string{"-rules-interval", rulesInterval.String()}})
	n1, n2 := nodes[0], nodes[1]
	s1, s2 := e2etest.Env(t, l, n1).Subnet, e2etest.Env(t, l, n2).Subnet
	mac1 := e2etest.VTEPMAC(t, l, n1)
	mac2 := e2etest.VTEPMAC(t, l, n2)
	rules := e2etest.WeftRules(t, l, n1)
	network := e2etest.Env(t, l, n1).Network.String()

	kernelIntact := func() error {
		if err := l.CheckPeer(n1, backend.Peer{Subnet: s2, PublicIP: n2.IP, VtepMAC: mac2}); err != nil {
			return err
		}
		if mac, err := l.VTEPMAC(n1); err != nil || mac.String() != mac1.String() {
			return fmt.Errorf("node1's device MAC %s (%v)", mac, err)
		}
		return nil
	}
	rulesIntact := func() error {
		if got := e2etest.WeftRules(t, l, n1); got != rules {
			return fmt.Errorf("rules:\n%s", got)
		}
		return nil
	}
	onDevice := func(fn func(h *netlink.Handle, dev netlink.Link) error) func() error {
		return func() error {
			return l.WithHandle(n1, func(h *netlink.Handle) error {
				dev, err := h.LinkByName(lab.Device)
				if err != nil {
					return err
				}
				return fn(h, dev)
			})
		}
	}
	withIPT := func(fn func(ipt *iptables.IPTables) error) func() error {
		return func() error { return e2etest.InNode(t, l, n1, fn) }
	}
	cases := []struct {
		name     string
		tamper   func() error
		restored func() error
		deadline time.Duration
	}{
		{"neighbour", onDevice(func(h *netlink.Handle, dev netlink.Link) error {
			return h.NeighDel(&netlink.Neigh{LinkIndex: dev.Attrs().Index, Family: unix.AF_INET, IP: s2.Addr().AsSlice()})
		}), kernelIntact, 5 * time.Second},
		{"FDB entry", onDevice(func(h *netlink.Handle, dev netlink.Link) error {
			return h.NeighDel(&netlink.Neigh{
				LinkIndex: dev.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
				IP: n2.IP.AsSlice(), HardwareAddr: mac2,
			})
		}), kernelIntact, 5 * time.Second},
		{"route", onDevice(func(h *netlink.Handle, dev netlink.Link) error {
			return h.RouteDel(&netlink.Route{LinkIndex: dev.Attrs().Index, Dst: ipNet(s2)})
		}), kernelIntact, 5 * time.Second},
		{"VXLAN device", onDevice(func(h *netlink.Handle, dev netlink.Link) error {
			return h.LinkDel(dev)
		}), func() error {
			if err := kernelIntact(); err != nil {
				return err
			}
			return l.WithHandle(n1, func(h *netlink.Handle) error {
				dev, err := h.LinkByName(lab.Device)
				if err != nil {
					return err
				}
				addrs, err := h.AddrList(dev, unix.AF_INET)
				if err != nil {
					return err
				}
				if len(addrs) != 1 || addrs[0].IPNet.String() != netip.PrefixFrom(s1.Addr(), 32).String() {
					return fmt.Errorf("device addresses %v", addrs)
				}
				return nil
			})
		}, 5 * time.Second},
		{"forward rule", withIPT(func(ipt *iptables.IPTables) error {
			return ipt.Delete("filter", "WEFT-FWD", "-s", network, "-m", "comment", "--comment", "weft forward", "-j", "ACCEPT")
		}), rulesIntact, rulesInterval + 5*time.Second},
		{"jump to the masquerade chain", withIPT(func(ipt *iptables.IPTables) error {
			return ipt.Delete("nat", "POSTROUTING", "-m", "comment", "--comment", "weft masq", "-j", "WEFT-POSTRTG")
		}), rulesIntact, rulesInterval + 5*time.Second},
		{"masquerade chain flushed", withIPT(func(ipt *iptables.IPTables) error {
			return ipt.ClearChain("nat", "WEFT-POSTRTG")
		}), rulesIntact, rulesInterval + 5*time.Second},
	}
	for round := range rounds {
		for _, c := range cases {
			t.Run(fmt.Sprintf("round %d/%s", round+1, c.name), func(t *testing.T) {
				tr := e2etest.StartTraffic(t, e2etest.PodPair(t, l, pods[0], pods[1]), e2etest.PodPair(t, l, pods[1], pods[0]), e2etest.NodePair(t, l, n1, pods[1]))
				time.Sleep(300 * time.Millisecond)
				if err := c.restored(); err != nil {
					t.Fatalf("before tampering: %v", err)
				}
				if err := c.tamper(); err != nil {
					t.Fatalf("tampering: %v", err)
				}
				took := e2etest.Poll(t, c.name+" restored", c.deadline, c.restored)
				t.Logf("FIGURE tampering %s: restored in %v", c.name, took.Round(time.Millisecond))
				time.Sleep(time.Second)
				e2etest.CheckTraffic(t, tr)
			})
		}
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}
