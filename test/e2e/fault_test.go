package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/lab"
)

// outageFor is how long etcd stays down: short in `make test`, a minute in `make soak`.
func outageFor() time.Duration {
	if os.Getenv("WEFT_SOAK") != "" {
		return 60 * time.Second
	}
	return 15 * time.Second
}

// pinger pings dst from src at 10 Hz until stopped and counts what it sent and lost.
type pinger struct {
	name       string
	sent, lost atomic.Int64
}

func startPingers(t *testing.T, l *lab.Lab, pairs map[string][2]any) (stop func() []*pinger) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var ps []*pinger
	for name, pair := range pairs {
		src := pair[0].(ns.NetNS)
		dst := pair[1].(netip.Addr)
		p := &pinger{name: name}
		ps = append(ps, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				p.sent.Add(1)
				if lab.Ping(src, dst, seq, time.Second) != nil {
					p.lost.Add(1)
				}
			}
		}()
	}
	return func() []*pinger {
		close(done)
		wg.Wait()
		return ps
	}
}

func metric(t *testing.T, l *lab.Lab, n *lab.Node, name string) string {
	t.Helper()
	code, body, err := lab.HTTPGet(context.Background(), mustNS(t, l, n.Netns), "http://127.0.0.1:9476/metrics")
	if err != nil || code != 200 {
		return fmt.Sprintf("error %v %d", err, code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return "absent"
}

// TestEtcdOutage stops etcd while traffic flows (scenario 1) and restarts a node's weftd during the
// outage (scenario 2): no ping may be lost, weftd stays up and reports weft_etcd_up 0, and when etcd
// returns the leases are still held and a new node joins within seconds.
func TestEtcdOutage(t *testing.T) {
	l, nodes := newLab(t, 2, 1)
	ctx := context.Background()
	pods := l.State().Pods
	before := map[string]netip.Prefix{}
	for _, n := range nodes {
		before[n.Name] = env(t, l, n).Subnet
	}
	stop := startPingers(t, l, map[string][2]any{
		"pod1→pod2":  {mustNS(t, l, pods[0].Netns), pods[1].IP},
		"pod2→pod1":  {mustNS(t, l, pods[1].Netns), pods[0].IP},
		"node1→pod2": {mustNS(t, l, nodes[0].Netns), pods[1].IP},
	})
	if err := l.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	outageStart := time.Now()
	poll(t, "weft_etcd_up 0", 20*time.Second, func() error {
		if v := metric(t, l, nodes[0], "weft_etcd_up"); v != "0" {
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
	poll(t, "node2's weftd up during the outage", 20*time.Second, func() error {
		if v := metric(t, l, nodes[1], "weft_etcd_up"); v != "0" {
			return fmt.Errorf("weft_etcd_up = %s", v)
		}
		return nil
	})
	if rest := outageFor() - time.Since(outageStart); rest > 0 {
		time.Sleep(rest)
	}
	for _, n := range nodes {
		if got := env(t, l, n).Subnet; got != before[n.Name] {
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
		poll(t, n.Name+" weft_etcd_up 1", 20*time.Second, func() error {
			if v := metric(t, l, n, "weft_etcd_up"); v != "1" {
				return fmt.Errorf("weft_etcd_up = %s", v)
			}
			return nil
		})
		if got := env(t, l, n).Subnet; got != before[n.Name] {
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
	poll(t, "pod1 reaches the new node's pod", 10*time.Second, func() error {
		return lab.Ping(mustNS(t, l, pods[0].Netns), p3.IP, 7, time.Second)
	})
	t.Logf("after the outage, a new node joined and was routed in %v", time.Since(joinStart).Round(time.Millisecond))
	for _, p := range stop() {
		t.Logf("%s: %d pings, %d lost", p.name, p.sent.Load(), p.lost.Load())
		if p.lost.Load() != 0 {
			t.Errorf("%s lost %d of %d pings", p.name, p.lost.Load(), p.sent.Load())
		}
	}
}
