package gossipfault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
)

// TestGossipFaults is scenario 8 on two nodes: a member with the wrong key cannot join; members
// with the right key that no lease names, claiming node2's subnet or a subnet nobody leased, are
// refused at admission and never programmed, and so is a member that takes node2's name from
// another address; ten members joining
// and leaving for ten seconds do not keep a new node from being programmed everywhere. The two nodes'
// pods never lose a ping and their entries for each other never change.
func TestGossipFaults(t *testing.T) { gossipFaults(t, 10, 10*time.Second) }

// TestSoakGossipChurn is scenario 8 with thirty members churning for a minute.
func TestSoakGossipChurn(t *testing.T) {
	e2etest.RequireSoak(t)
	gossipFaults(t, 30, time.Minute)
}

func gossipFaults(t *testing.T, churners int, churnFor time.Duration) {
	l, nodes, pods := harness.Start(t, labtest.Spec{Nodes: 2, Pods: 1})
	ctx := context.Background()
	n1, n2 := nodes[0], nodes[1]
	s1, s2 := e2etest.Env(t, l, n1).Subnet, e2etest.Env(t, l, n2).Subnet
	mac1 := e2etest.VTEPMAC(t, l, n1)
	mac2 := e2etest.VTEPMAC(t, l, n2)
	outNS, outIP, err := l.AddOutsideHost()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(l.State().Dir, "gossip.key")
	join := []string{netip.AddrPortFrom(n1.IP, gossip.DefaultBindPort).String(), netip.AddrPortFrom(n2.IP, gossip.DefaultBindPort).String()}
	pairs := []e2etest.PingPair{e2etest.PodPair(t, l, pods[0], pods[1]), e2etest.PodPair(t, l, pods[1], pods[0]), e2etest.NodePair(t, l, n1, pods[1])}
	tr := e2etest.StartTraffic(t, pairs...)
	w1 := e2etest.WatchEntries(l, []*lab.Node{n1}, s2, mac2, n2.IP)
	w2 := e2etest.WatchEntries(l, []*lab.Node{n2}, s1, mac1, n1.IP)
	members := func(n *lab.Node) int {
		v, _ := strconv.Atoi(e2etest.Metric(t, l, n, "weft_gossip_members"))
		return v
	}
	rogueMAC := net.HardwareAddr{0x02, 0x66, 0x66, 0x66, 0x66, 0x66}
	unleased := netip.MustParsePrefix("10.244.250.0/24")
	future := time.Now().Add(time.Hour).UnixNano()

	t.Run("wrong key cannot join", func(t *testing.T) {
		wrongKey := filepath.Join(t.TempDir(), "wrong.key")
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(wrongKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a := e2etest.StartActor(t, l, outNS, e2etest.ActorSpec{BindIP: outIP, Join: join, Members: []e2etest.ActorMember{
			{Name: "intruder", Port: gossip.DefaultBindPort, KeyFile: wrongKey, Meta: &gossip.Meta{
				NodeName: "intruder", Subnet: s2, PublicIP: outIP, VtepMAC: rogueMAC, VNI: 1, AttrVersion: future,
			}},
		}})
		e2etest.Poll(t, "the intruder's join attempts", 20*time.Second, func() error {
			if a.Value("stats intruder joinFailures") == 0 {
				return fmt.Errorf("no failed join reported yet")
			}
			return nil
		})
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if m1, m2, mi := members(n1), members(n2), a.Value("stats intruder members"); m1 != 2 || m2 != 2 || mi != 1 {
				t.Fatalf("the intruder got in: members node1 %d, node2 %d, intruder %d", m1, m2, mi)
			}
		}
		t.Logf("intruder: %d failed join rounds, members %d", a.Value("stats intruder joinFailures"), a.Value("stats intruder members"))
		noTrace(t, l, nodes, rogueMAC, unleased)
		a.Stop()
	})

	t.Run("members no lease names are refused, whatever they claim", func(t *testing.T) {
		refused := func(n *lab.Node) int {
			v, _ := strconv.Atoi(e2etest.Metric(t, l, n, "weft_gossip_refused_total"))
			return v
		}
		before1, before2 := refused(n1), refused(n2)
		a := e2etest.StartActor(t, l, outNS, e2etest.ActorSpec{BindIP: outIP, KeyFile: keyFile, Join: join, Members: []e2etest.ActorMember{
			{Name: "rogue", Port: gossip.DefaultBindPort, Meta: &gossip.Meta{
				NodeName: "rogue", Subnet: s2, PublicIP: outIP, VtepMAC: rogueMAC, VNI: 1, AttrVersion: future,
			}},
			{Name: "squatter", Port: gossip.DefaultBindPort + 1, Meta: &gossip.Meta{
				NodeName: "squatter", Subnet: unleased, PublicIP: outIP, VtepMAC: rogueMAC, VNI: 1, AttrVersion: future,
			}},
		}})
		e2etest.Poll(t, "the rogue members refused by both nodes", 20*time.Second, func() error {
			if r1, r2 := refused(n1), refused(n2); r1 <= before1 || r2 <= before2 {
				return fmt.Errorf("refused announcements node1 %d, node2 %d", r1, r2)
			}
			return nil
		})
		e2etest.WaitLog(t, n1, 10*time.Second, "gossip member refused", "node=rogue", "no lease names the node")
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if m1, m2 := members(n1), members(n2); m1 != 2 || m2 != 2 {
				t.Fatalf("a rogue member got in: members node1 %d, node2 %d", m1, m2)
			}
		}
		noTrace(t, l, nodes, rogueMAC, unleased)
		a.Stop()
	})

	t.Run("a member taking a live node's name is refused", func(t *testing.T) {
		a := e2etest.StartActor(t, l, outNS, e2etest.ActorSpec{BindIP: outIP, KeyFile: keyFile, Join: join, Members: []e2etest.ActorMember{
			{Name: n2.Name, Port: gossip.DefaultBindPort, Meta: &gossip.Meta{
				NodeName: n2.Name, Subnet: s2, PublicIP: outIP, VtepMAC: rogueMAC, VNI: 1, AttrVersion: future,
			}},
		}})
		e2etest.Poll(t, "the impostor's join attempt", 20*time.Second, func() error {
			if a.Value("stats "+n2.Name+" members") == 0 && a.Value("stats "+n2.Name+" joinFailures") == 0 {
				return fmt.Errorf("no join reported yet")
			}
			return nil
		})
		time.Sleep(3 * time.Second)
		noTrace(t, l, nodes, rogueMAC, unleased)
		t.Logf("impostor: members %d, failed join rounds %d; node1 logged the name conflict: %t",
			a.Value("stats "+n2.Name+" members"), a.Value("stats "+n2.Name+" joinFailures"),
			e2etest.ContainsAll(e2etest.NodeLog(t, n1), "gossip member name in use at two addresses"))
		a.Stop()
	})

	t.Run("join and leave churn", func(t *testing.T) {
		start := time.Now()
		a := e2etest.StartActor(t, l, outNS, e2etest.ActorSpec{BindIP: outIP, KeyFile: keyFile, Join: join, Churn: churners, ChurnPort: 8000})
		time.Sleep(time.Second)
		n3, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		joined := time.Now()
		if err := l.WaitReady(ctx, n3, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		p3, err := l.AddPod(ctx, n3)
		if err != nil {
			t.Fatal(err)
		}
		e2etest.Poll(t, "node3 programmed everywhere during the churn", 30*time.Second, func() error {
			for _, pair := range [][2]*lab.Node{{n1, n3}, {n2, n3}, {n3, n1}, {n3, n2}} {
				if err := l.CheckPeerNode(pair[0], pair[1]); err != nil {
					return err
				}
			}
			return lab.Ping(e2etest.NS(t, l, pods[0].Netns), p3.IP, 9100, 500*time.Millisecond)
		})
		t.Logf("FIGURE gossip churn: a node joining during the churn was programmed everywhere and reached %v after its weftd started",
			time.Since(joined).Round(time.Millisecond))
		if rest := churnFor - time.Since(start); rest > 0 {
			time.Sleep(rest)
		}
		cycles := a.Value("churn cycles")
		a.Stop()
		settled := e2etest.Poll(t, "the churning members gone from every node", 60*time.Second, func() error {
			for _, n := range []*lab.Node{n1, n2, n3} {
				if m := members(n); m != 3 {
					return fmt.Errorf("%s counts %d members", n.Name, m)
				}
			}
			return nil
		})
		t.Logf("FIGURE gossip churn: %d members made %d join/leave cycles in %v; member counts settled %v after",
			churners, cycles, churnFor, settled.Round(time.Millisecond))
		if cycles < churners {
			t.Errorf("only %d churn cycles", cycles)
		}
	})

	time.Sleep(time.Second)
	e2etest.CheckEntries(t, w1, "node1's entries for node2")
	e2etest.CheckEntries(t, w2, "node2's entries for node1")
	e2etest.CheckTraffic(t, tr, e2etest.Names(pairs)...)
}

// noTrace fails if a node holds an FDB entry or neighbour for mac or a route to unleased.
func noTrace(t *testing.T, l *lab.Lab, nodes []*lab.Node, mac net.HardwareAddr, unleased netip.Prefix) {
	t.Helper()
	for _, n := range nodes {
		err := l.WithHandle(n, func(h *netlink.Handle) error {
			for _, fam := range []int{unix.AF_INET, unix.AF_BRIDGE} {
				neighs, err := h.NeighList(0, fam)
				if err != nil {
					return err
				}
				for _, nb := range neighs {
					if nb.HardwareAddr.String() == mac.String() {
						return fmt.Errorf("entry for %s: %v", mac, nb)
					}
				}
			}
			routes, err := h.RouteList(nil, unix.AF_INET)
			if err != nil {
				return err
			}
			for _, r := range routes {
				if r.Dst != nil && r.Dst.String() == unleased.String() {
					return fmt.Errorf("route to %s", unleased)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s programmed a rogue claim: %v", n.Name, err)
		}
	}
}
