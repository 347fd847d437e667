package reboot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/vxlan"
)

// TestNodeReboot is scenario 4: a simulated reboot of node1 (device, peer entries, rules and subnet
// file gone, state dir kept) brings it back with the same MAC and subnet while its peers' entries
// for it never change; and node1's VTEP MAC changing (set by hand, with etcd up and with etcd down,
// then the state dir wiped) is programmed by every peer and pings recover.
func TestNodeReboot(t *testing.T) { nodeReboot(t, 1) }

// TestSoakNodeReboot repeats scenario 4 ten times.
func TestSoakNodeReboot(t *testing.T) {
	e2etest.RequireSoak(t)
	nodeReboot(t, 10)
}

func nodeReboot(t *testing.T, rounds int) {
	l, nodes, pods := harness.Start(t, labtest.Spec{Nodes: 3, Pods: 1})
	n1, peers := nodes[0], nodes[1:]
	s1 := e2etest.Env(t, l, n1).Subnet
	derived := e2etest.VTEPMAC(t, l, n1)
	rules := e2etest.WeftRules(t, l, n1)
	// pod2→pod3 does not involve node1 and must never lose a ping.
	pairs := func() []e2etest.PingPair {
		return []e2etest.PingPair{
			e2etest.PodPair(t, l, pods[0], pods[1]), e2etest.PodPair(t, l, pods[1], pods[0]), e2etest.PodPair(t, l, pods[2], pods[0]),
			e2etest.PodPair(t, l, pods[1], pods[2]), e2etest.NodePair(t, l, nodes[1], pods[0]), e2etest.NodePair(t, l, n1, pods[2]),
		}
	}
	unrelated := pods[1].Name + "→" + pods[2].Name

	for round := range rounds {
		t.Run(fmt.Sprintf("round %d/reboot", round+1), func(t *testing.T) {
			tr := e2etest.StartTraffic(t, pairs()...)
			w := e2etest.WatchEntries(l, peers, s1, derived, n1.IP)
			down := time.Now()
			simulateReboot(t, l, n1)
			if err := l.StartWeftd(n1); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := l.WaitReady(context.Background(), n1, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			ready := time.Since(start)
			back := e2etest.Poll(t, "pod2 reaches pod1 again", 15*time.Second, func() error {
				return lab.Ping(e2etest.NS(t, l, pods[1].Netns), pods[0].IP, 9000, 500*time.Millisecond)
			})
			t.Logf("FIGURE reboot: weftd ready %v after start; datapath back %v after start, down %v in all",
				ready.Round(time.Millisecond), (ready + back).Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
			time.Sleep(time.Second)
			e2etest.CheckEntries(t, w, "peers' entries for node1 during its reboot")
			e2etest.CheckTraffic(t, tr, unrelated)
			if mac, err := l.VTEPMAC(n1); err != nil || mac.String() != derived.String() {
				t.Errorf("MAC after reboot %s (%v), want %s", mac, err, derived)
			}
			if got := e2etest.Env(t, l, n1).Subnet; got != s1 {
				t.Errorf("subnet after reboot %s, want %s", got, s1)
			}
			for _, p := range peers {
				ps := e2etest.Env(t, l, p).Subnet
				mac := e2etest.VTEPMAC(t, l, p)
				if err := l.CheckPeer(n1, backend.Peer{Subnet: ps, PublicIP: p.IP, VtepMAC: mac}); err != nil {
					t.Errorf("after reboot: %v", err)
				}
			}
			if got := e2etest.WeftRules(t, l, n1); got != rules {
				t.Errorf("node1's rules after reboot:\n%s\nwant:\n%s", got, rules)
			}
		})

		t.Run(fmt.Sprintf("round %d/reboot during an etcd outage", round+1), func(t *testing.T) {
			if err := l.StopEtcd(); err != nil {
				t.Fatal(err)
			}
			etcdUp := false
			t.Cleanup(func() {
				if !etcdUp {
					if err := l.StartEtcd(context.Background()); err != nil {
						t.Error(err)
					}
				}
			})
			simulateReboot(t, l, n1)
			if err := l.StartWeftd(n1); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			// Pods of node1 reach every peer's pod, and back, from the saved lease set alone.
			e2etest.Poll(t, "node1's pod and its peers' pods reach each other without etcd", 20*time.Second, func() error {
				for _, pp := range [][2]*lab.Pod{{pods[0], pods[1]}, {pods[0], pods[2]}, {pods[1], pods[0]}, {pods[2], pods[0]}} {
					if err := lab.Ping(e2etest.NS(t, l, pp[0].Netns), pp[1].IP, 9200, 500*time.Millisecond); err != nil {
						return fmt.Errorf("%s → %s: %w", pp[0].Name, pp[1].Name, err)
					}
				}
				return nil
			})
			t.Logf("FIGURE reboot during an etcd outage: node1's pod reaches every peer %v after weftd started", time.Since(start).Round(time.Millisecond))
			e2etest.WaitLog(t, n1, 5*time.Second, "programming peers from the saved lease set until etcd answers")
			if err := l.StartEtcd(context.Background()); err != nil {
				t.Fatal(err)
			}
			etcdUp = true
			if err := l.WaitReady(context.Background(), n1, 60*time.Second); err != nil {
				t.Fatal(err)
			}
		})

		hand := net.HardwareAddr{0x02, 0x77, 0x65, 0x66, 0x74, byte(2 * round)}
		t.Run(fmt.Sprintf("round %d/MAC set by hand", round+1), func(t *testing.T) {
			macChange(t, l, n1, peers, pairs(), unrelated, hand, "etcd up", func() {
				if err := l.StopWeftd(n1, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				writeMAC(t, n1, hand)
			})
		})

		handDown := net.HardwareAddr{0x02, 0x77, 0x65, 0x66, 0x74, byte(2*round + 1)}
		t.Run(fmt.Sprintf("round %d/MAC set by hand while etcd is down", round+1), func(t *testing.T) {
			if err := l.StopEtcd(); err != nil {
				t.Fatal(err)
			}
			etcdBack := false
			defer func() {
				if !etcdBack {
					if err := l.StartEtcd(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}()
			macChange(t, l, n1, peers, pairs(), unrelated, handDown, "etcd down", func() {
				if err := l.StopWeftd(n1, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				writeMAC(t, n1, handDown)
			})
			etcdBack = true
			if err := l.StartEtcd(context.Background()); err != nil {
				t.Fatal(err)
			}
			e2etest.Poll(t, "node1's lease carries the new MAC once etcd is back", 30*time.Second, func() error {
				a, err := subnet.ParseLeaseAttrs([]byte(e2etest.EtcdGet(t, l, e2etest.LeaseKey(s1))))
				if err != nil {
					return err
				}
				if a.VtepMAC.String() != handDown.String() {
					return fmt.Errorf("lease has %s", a.VtepMAC)
				}
				return nil
			})
			for _, p := range peers {
				if err := l.CheckPeer(p, backend.Peer{Subnet: s1, PublicIP: n1.IP, VtepMAC: handDown}); err != nil {
					t.Errorf("after etcd returned: %v", err)
				}
			}
		})

		t.Run(fmt.Sprintf("round %d/state dir wiped", round+1), func(t *testing.T) {
			macChange(t, l, n1, peers, pairs(), unrelated, derived, "state wiped", func() {
				if err := l.StopWeftd(n1, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(n1.Dir, "state")); err != nil {
					t.Fatal(err)
				}
			})
			if got := e2etest.Env(t, l, n1).Subnet; got != s1 {
				t.Errorf("subnet after the state dir was wiped: %s, want %s", got, s1)
			}
		})
	}
}

// macChange stops node's weftd and changes its MAC through change, starts it again and measures
// how long after the device carries want every peer has programmed it; pings must recover.
func macChange(t *testing.T, l *lab.Lab, node *lab.Node, peers []*lab.Node, pairs []e2etest.PingPair, lossless string, want net.HardwareAddr, what string, change func()) {
	t.Helper()
	s := e2etest.Env(t, l, node).Subnet
	tr := e2etest.StartTraffic(t, pairs...)
	change()
	w := watchMAC(l, node, peers, s, want)
	if err := l.StartWeftd(node); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	res := w.wait(40 * time.Second)
	if res.device.IsZero() {
		t.Fatalf("node's device never carried %s", want)
	}
	for _, p := range peers {
		if _, ok := res.peers[p.Name]; !ok {
			t.Fatalf("%s never programmed %s for %s: %v", p.Name, want, node.Name, res.last[p.Name])
		}
	}
	t.Logf("FIGURE MAC change (%s): device carried the new MAC %v after weftd started; every peer programmed it %v after that",
		what, res.device.Sub(started).Round(time.Millisecond), res.propagation().Round(time.Millisecond))
	if res.propagation() > 10*time.Second {
		t.Errorf("peers programmed the new MAC %v after the device carried it (goal < 1s)", res.propagation())
	}
	back := e2etest.Poll(t, "pods reach "+node.Name+"'s pod again", 15*time.Second, func() error {
		for _, p := range pairs {
			if err := lab.Ping(p.Src, p.Dst, 9001, 500*time.Millisecond); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
		}
		return nil
	})
	t.Logf("all pairs answered %v after the peers had the new MAC", back.Round(time.Millisecond))
	time.Sleep(time.Second)
	e2etest.CheckTraffic(t, tr, lossless)
}

func writeMAC(t *testing.T, n *lab.Node, mac net.HardwareAddr) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.Dir, "state", lab.Device+".mac"), []byte(mac.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// simulateReboot stops node's weftd and removes what a reboot loses: the VXLAN device (and with it
// every neighbour, FDB entry and route on it), weft's iptables rules and the subnet file. The state
// dir stays, as on disk; the pods' namespaces stay so that their traffic can resume.
func simulateReboot(t *testing.T, l *lab.Lab, n *lab.Node) {
	t.Helper()
	if err := l.StopWeftd(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := l.WithHandle(n, func(h *netlink.Handle) error {
		o, err := vxlan.OwnershipOf(h, lab.Device, vxlan.DefaultRouteProtocol)
		if err != nil {
			return err
		}
		owned, err := o.Dump(h)
		if err != nil {
			return err
		}
		if err := h.LinkDel(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Index: o.Device}}); err != nil {
			return err
		}
		for _, r := range owned.Routes {
			if r.LinkIndex == o.Device {
				continue // gone with the device
			}
			if err := h.RouteDel(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e2etest.InNode(t, l, n, func(ipt *iptables.IPTables) error {
		return errors.Join(
			ipt.DeleteIfExists("filter", "FORWARD", "-m", "comment", "--comment", "weft forward", "-j", "WEFT-FWD"),
			ipt.DeleteIfExists("nat", "POSTROUTING", "-m", "comment", "--comment", "weft masq", "-j", "WEFT-POSTRTG"),
			ipt.ClearAndDeleteChain("filter", "WEFT-FWD"),
			ipt.ClearAndDeleteChain("nat", "WEFT-POSTRTG"),
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(n.Dir, "subnet.env")); err != nil {
		t.Fatal(err)
	}
	if got := e2etest.WeftRules(t, l, n); !strings.Contains(got, "filter/WEFT-FWD missing") || !strings.Contains(got, "nat/WEFT-POSTRTG missing") {
		t.Fatalf("rules left after the simulated reboot:\n%s", got)
	}
}
