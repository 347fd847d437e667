package fabric

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
)

// outside is the shared fabric's host outside the pod network, added once.
var outside struct {
	sync.Once
	ns  string
	ip  netip.Addr
	err error
}

// TestFabric checks the Kubernetes network model on a 3-node fabric: every pod reaches every pod and
// every node reaches every pod, and the receiver sees the sender's real address; traffic to the
// outside is masqueraded to the node's address; a hostPort answers on the node.
func TestFabric(t *testing.T) {
	l, nodes, pods := sharedFabric(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const echoPort = 7000
	for _, p := range pods {
		if _, err := lab.EchoServer(ctx, e2etest.NS(t, l, p.Netns), echoPort); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("pod to pod without NAT", func(t *testing.T) {
		for _, src := range pods {
			for _, dst := range pods {
				if src == dst {
					continue
				}
				seen, err := lab.WhoAmI(e2etest.NS(t, l, src.Netns), netip.AddrPortFrom(dst.IP, echoPort), 3*time.Second)
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
			own := e2etest.Env(t, l, n).Subnet
			for _, dst := range pods {
				seen, err := lab.WhoAmI(e2etest.NS(t, l, n.Netns), netip.AddrPortFrom(dst.IP, echoPort), 3*time.Second)
				if err != nil {
					t.Errorf("%s → %s: %v", n.Name, dst.Name, err)
				} else if !own.Contains(seen) {
					t.Errorf("%s → %s: receiver saw %s, want an address of the node's subnet %s", n.Name, dst.Name, seen, own)
				}
			}
		}
	})
	t.Run("pod to outside is masqueraded", func(t *testing.T) {
		outside.Do(func() { outside.ns, outside.ip, outside.err = l.AddOutsideHost() })
		if outside.err != nil {
			t.Fatal(outside.err)
		}
		if _, err := lab.EchoServer(ctx, e2etest.NS(t, l, outside.ns), echoPort); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			var node *lab.Node
			for _, n := range nodes {
				if n.Name == p.Node {
					node = n
				}
			}
			seen, err := lab.WhoAmI(e2etest.NS(t, l, p.Netns), netip.AddrPortFrom(outside.ip, echoPort), 3*time.Second)
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
		// The shared fabric keeps no hostPort of this test's.
		t.Cleanup(func() {
			if err := l.DelPod(context.Background(), p); err != nil {
				t.Error(err)
			}
		})
		if _, err := lab.EchoServer(ctx, e2etest.NS(t, l, p.Netns), echoPort); err != nil {
			t.Fatal(err)
		}
		other := e2etest.NS(t, l, nodes[1].Netns)
		e2etest.Poll(t, "hostPort answer", 10*time.Second, func() error {
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

// TestMembership covers a node joining late, a stopped node whose lease is reclaimed (the late
// joiner), and a live node whose lease is deleted.
func TestMembership(t *testing.T) {
	l, shared, pods := sharedFabric(t)
	nodes := append([]*lab.Node(nil), shared...)
	ctx := context.Background()
	cli, err := l.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	t.Run("late joiner is routed everywhere", func(t *testing.T) {
		late, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.WaitReady(ctx, late, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		p, err := l.AddPod(ctx, late)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, late)
		for _, src := range pods {
			d := e2etest.Poll(t, src.Name+" → "+p.Name, 10*time.Second, func() error {
				return lab.Ping(e2etest.NS(t, l, src.Netns), p.IP, 1, time.Second)
			})
			t.Logf("%s reached the late joiner's pod after %v", src.Name, d)
		}
	})

	t.Run("stopped node whose lease is reclaimed disappears", func(t *testing.T) {
		if len(nodes) == len(shared) {
			t.Fatal("no late joiner to stop")
		}
		gone := nodes[len(nodes)-1]
		s := e2etest.Env(t, l, gone).Subnet
		if err := l.StopWeftd(gone, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Delete(ctx, e2etest.LeaseKey(s)); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes[:len(nodes)-1] {
			e2etest.Poll(t, n.Name+" forgets "+s.String(), 10*time.Second, func() error {
				if r, nb := kernelHas(t, l, n, s); r || nb {
					return fmt.Errorf("route %v neigh %v still there", r, nb)
				}
				return nil
			})
		}
	})

	t.Run("live node whose lease is deleted re-acquires it", func(t *testing.T) {
		n := nodes[0]
		s := e2etest.Env(t, l, n).Subnet
		key := e2etest.LeaseKey(s)
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		e2etest.Poll(t, "lease back in etcd", 15*time.Second, func() error {
			resp, err := cli.Get(ctx, key)
			if err != nil {
				return err
			}
			if len(resp.Kvs) == 0 {
				return errors.New("no key")
			}
			return nil
		})
		if got := e2etest.Env(t, l, n).Subnet; got != s {
			t.Fatalf("subnet changed from %s to %s", s, got)
		}
		if err := l.WaitReady(ctx, n, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		peer := nodes[1]
		e2etest.Poll(t, peer.Name+" routes "+s.String()+" again", 10*time.Second, func() error {
			if r, nb := kernelHas(t, l, peer, s); !r || !nb {
				return fmt.Errorf("route %v neigh %v", r, nb)
			}
			return nil
		})
	})
}
