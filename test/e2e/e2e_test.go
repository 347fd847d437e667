// Package e2e runs whole weft fabrics in network namespaces — etcd, weftd on every node, pods
// attached through the CNI plugin — and checks what the Kubernetes network model promises.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	pollpkg "github.com/weft-net/weft/internal/poll"
	"github.com/weft-net/weft/subnet"
)

var harness = &labtest.Harness{ModuleDir: "../..", Prefix: "we"}

func TestMain(m *testing.M) {
	if spec := os.Getenv(actorEnv); spec != "" {
		os.Exit(runGossipActor(spec))
	}
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipped: needs root (network namespaces, links, rules)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "weft-e2e-bin")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := lab.Build("../..", dir); err != nil {
		fmt.Println(err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	harness.BinDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newLab starts a lab whose nodes run weftd with the extra flags, each node with pods pods; it is
// removed when t ends.
func newLab(t *testing.T, nodes, pods int, extra ...string) (*lab.Lab, []*lab.Node) {
	t.Helper()
	return harness.Lab(t, nodes, pods, extra...)
}

func mustNS(t *testing.T, l *lab.Lab, name string) ns.NetNS {
	t.Helper()
	n, err := l.NS(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func env(t *testing.T, l *lab.Lab, n *lab.Node) *subnet.Env {
	t.Helper()
	e, err := l.Env(n)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// poll retries cond until it returns nil or timeout passes, and returns how long that took.
func poll(t *testing.T, what string, timeout time.Duration, cond func() error) time.Duration {
	t.Helper()
	took, err := pollpkg.Until(context.Background(), what, timeout, cond)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// TestFabric checks the Kubernetes network model on a 3-node fabric: every pod reaches every pod and
// every node reaches every pod, and the receiver sees the sender's real address; traffic to the
// outside is masqueraded to the node's address; a hostPort answers on the node.
func TestFabric(t *testing.T) {
	l, nodes := newLab(t, 3, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := l.State().Pods
	const echoPort = 7000
	for _, p := range pods {
		if _, err := lab.EchoServer(ctx, mustNS(t, l, p.Netns), echoPort); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("pod to pod without NAT", func(t *testing.T) {
		for _, src := range pods {
			for _, dst := range pods {
				if src == dst {
					continue
				}
				seen, err := lab.WhoAmI(mustNS(t, l, src.Netns), netip.AddrPortFrom(dst.IP, echoPort), 3*time.Second)
				if err != nil {
					t.Errorf("%s → %s: %v", src.Name, dst.Name, err)
				} else if seen != src.IP {
					t.Errorf("%s → %s: receiver saw %s, want the pod's own %s", src.Name, dst.Name, seen, src.IP)
				}
			}
		}
	})
	t.Run("node to pod without NAT", func(t *testing.T) {
		for _, n := range nodes {
			own := env(t, l, n).Subnet
			for _, dst := range pods {
				seen, err := lab.WhoAmI(mustNS(t, l, n.Netns), netip.AddrPortFrom(dst.IP, echoPort), 3*time.Second)
				if err != nil {
					t.Errorf("%s → %s: %v", n.Name, dst.Name, err)
				} else if !own.Contains(seen) {
					t.Errorf("%s → %s: receiver saw %s, want an address of the node's subnet %s", n.Name, dst.Name, seen, own)
				}
			}
		}
	})
	t.Run("pod to outside is masqueraded", func(t *testing.T) {
		outNS, outIP, err := l.AddOutsideHost()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lab.EchoServer(ctx, mustNS(t, l, outNS), echoPort); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			var node *lab.Node
			for _, n := range nodes {
				if n.Name == p.Node {
					node = n
				}
			}
			seen, err := lab.WhoAmI(mustNS(t, l, p.Netns), netip.AddrPortFrom(outIP, echoPort), 3*time.Second)
			if err != nil {
				t.Errorf("%s → outside: %v", p.Name, err)
			} else if seen != node.IP {
				t.Errorf("%s → outside: seen as %s, want its node's %s", p.Name, seen, node.IP)
			}
		}
	})
	t.Run("hostPort through portmap", func(t *testing.T) {
		const hostPort = 18080
		p, err := l.AddPod(ctx, nodes[0], lab.PortMapping{HostPort: hostPort, ContainerPort: echoPort, Protocol: "tcp"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lab.EchoServer(ctx, mustNS(t, l, p.Netns), echoPort); err != nil {
			t.Fatal(err)
		}
		other := mustNS(t, l, nodes[1].Netns)
		poll(t, "hostPort answer", 10*time.Second, func() error {
			_, err := lab.WhoAmI(other, netip.AddrPortFrom(nodes[0].IP, hostPort), time.Second)
			return err
		})
	})
}

// kernelHas reports whether node's kernel holds weft's route and neighbour entry for subnet s.
func kernelHas(t *testing.T, l *lab.Lab, n *lab.Node, s netip.Prefix) (route, neigh bool) {
	t.Helper()
	_, owned, err := l.Owned(n)
	if err != nil {
		t.Fatal(err)
	}
	e := owned.Peer(s)
	return e.Route != nil, e.MAC != nil
}

// TestMembership covers nodes joining late, a stopped node whose lease is reclaimed, and a live node
// whose lease is deleted.
func TestMembership(t *testing.T) {
	l, nodes := newLab(t, 2, 1)
	ctx := context.Background()
	cli, err := l.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	t.Run("late joiner is routed everywhere", func(t *testing.T) {
		n3, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.WaitReady(ctx, n3, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		p3, err := l.AddPod(ctx, n3)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n3)
		for _, p := range l.State().Pods {
			if p == p3 || p.Name == p3.Name {
				continue
			}
			d := poll(t, p.Name+" → "+p3.Name, 10*time.Second, func() error {
				return lab.Ping(mustNS(t, l, p.Netns), p3.IP, 1, time.Second)
			})
			t.Logf("%s reached the late joiner's pod after %v", p.Name, d)
		}
	})

	t.Run("stopped node whose lease is reclaimed disappears", func(t *testing.T) {
		gone := nodes[len(nodes)-1]
		s := env(t, l, gone).Subnet
		if err := l.StopWeftd(gone, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		key := "/weft/network/subnets/" + subnet.SubnetKey(s)
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes[:len(nodes)-1] {
			poll(t, n.Name+" forgets "+s.String(), 10*time.Second, func() error {
				if r, nb := kernelHas(t, l, n, s); r || nb {
					return fmt.Errorf("route %v neigh %v still there", r, nb)
				}
				return nil
			})
		}
	})

	t.Run("live node whose lease is deleted re-acquires it", func(t *testing.T) {
		n := nodes[0]
		s := env(t, l, n).Subnet
		key := "/weft/network/subnets/" + subnet.SubnetKey(s)
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		poll(t, "lease back in etcd", 15*time.Second, func() error {
			resp, err := cli.Get(ctx, key)
			if err != nil {
				return err
			}
			if len(resp.Kvs) == 0 {
				return errors.New("no key")
			}
			return nil
		})
		if got := env(t, l, n).Subnet; got != s {
			t.Fatalf("subnet changed from %s to %s", s, got)
		}
		if err := l.WaitReady(ctx, n, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		peer := nodes[1]
		poll(t, peer.Name+" routes "+s.String()+" again", 10*time.Second, func() error {
			if r, nb := kernelHas(t, l, peer, s); !r || !nb {
				return fmt.Errorf("route %v neigh %v", r, nb)
			}
			return nil
		})
	})
}
