package etcdfault

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
)

// outageFor is how long etcd stays down: short in `make test`, a minute in `make soak`.
func outageFor() time.Duration {
	if e2etest.Soak() {
		return 60 * time.Second
	}
	return 15 * time.Second
}

// TestEtcdOutage stops etcd while traffic flows (scenario 1) and restarts a node's weftd during the
// outage (scenario 2): no ping may be lost, weftd stays up and reports weft_etcd_up 0, and when etcd
// returns the leases are still held and a new node joins within seconds.
func TestEtcdOutage(t *testing.T) {
	l, nodes, pods := harness.Start(t, labtest.Spec{Nodes: 2, Pods: 1})
	ctx := context.Background()
	before := map[string]netip.Prefix{}
	for _, n := range nodes {
		before[n.Name] = e2etest.Env(t, l, n).Subnet
	}
	pairs := []e2etest.PingPair{
		e2etest.PodPair(t, l, pods[0], pods[1]), e2etest.PodPair(t, l, pods[1], pods[0]), e2etest.NodePair(t, l, nodes[0], pods[1]),
	}
	tr := e2etest.StartTraffic(t, pairs...)
	if err := l.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	outageStart := time.Now()
	e2etest.Poll(t, "weft_etcd_up 0", 20*time.Second, func() error {
		if v := e2etest.Metric(t, l, nodes[0], "weft_etcd_up"); v != "0" {
			return fmt.Errorf("weft_etcd_up = %s", v)
		}
		return nil
	})
	// Scenario 2: restart node2's weftd during the outage.
	if err := l.StopWeftd(nodes[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := l.StartWeftd(nodes[1]); err != nil {
		t.Fatal(err)
	}
	e2etest.Poll(t, "node2's weftd up during the outage", 20*time.Second, func() error {
		if v := e2etest.Metric(t, l, nodes[1], "weft_etcd_up"); v != "0" {
			return fmt.Errorf("weft_etcd_up = %s", v)
		}
		return nil
	})
	if rest := outageFor() - time.Since(outageStart); rest > 0 {
		time.Sleep(rest)
	}
	for _, n := range nodes {
		if got := e2etest.Env(t, l, n).Subnet; got != before[n.Name] {
			t.Errorf("%s's subnet changed during the outage: %s → %s", n.Name, before[n.Name], got)
		}
	}
	if err := l.StartEtcd(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd was down for %v", time.Since(outageStart).Round(time.Millisecond))
	for _, n := range nodes {
		if err := l.WaitReady(ctx, n, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e2etest.Poll(t, n.Name+" weft_etcd_up 1", 20*time.Second, func() error {
			if v := e2etest.Metric(t, l, n, "weft_etcd_up"); v != "1" {
				return fmt.Errorf("weft_etcd_up = %s", v)
			}
			return nil
		})
		if got := e2etest.Env(t, l, n).Subnet; got != before[n.Name] {
			t.Errorf("%s's subnet after the outage: %s, want %s", n.Name, got, before[n.Name])
		}
	}
	joinStart := time.Now()
	n3, err := l.AddNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReady(ctx, n3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p3, err := l.AddPod(ctx, n3)
	if err != nil {
		t.Fatal(err)
	}
	e2etest.Poll(t, "pod1 reaches the new node's pod", 10*time.Second, func() error {
		return lab.Ping(e2etest.NS(t, l, pods[0].Netns), p3.IP, 7, time.Second)
	})
	t.Logf("after the outage, a new node joined and was routed in %v", time.Since(joinStart).Round(time.Millisecond))
	e2etest.CheckTraffic(t, tr, e2etest.Names(pairs)...)
}
