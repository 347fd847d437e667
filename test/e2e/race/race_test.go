package race

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	"github.com/weft-net/weft/subnet"
)

// TestRaces is scenario 6: 20 nodes started at once on a network with exactly 20 free subnets all
// get distinct subnets and program each other; then two nodes race for one more subnet: one wins,
// the other exits non-zero saying "no free subnet", and the running nodes' traffic is untouched.
func TestRaces(t *testing.T) {
	const nodes = 20
	l, _, _ := harness.Start(t, labtest.Spec{})
	ctx := context.Background()
	e2etest.EtcdPut(t, l, e2etest.ConfigKey, e2etest.SubnetsConfig(nodes))

	var all []*lab.Node
	for range nodes {
		n, err := l.PrepareNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, n)
	}
	start := time.Now()
	startAll(t, l, all)
	for _, n := range all {
		if err := l.WaitReady(ctx, n, 120*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("FIGURE race: %d nodes started at once were all ready %v later", nodes, time.Since(start).Round(time.Millisecond))

	cfg, err := subnet.ParseConfig([]byte(e2etest.SubnetsConfig(nodes)))
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Prefix]string{}
	byName := map[string]*lab.Node{}
	for _, n := range all {
		byName[n.Name] = n
		s := e2etest.Env(t, l, n).Subnet
		if !cfg.Allocatable(s) {
			t.Errorf("%s got %s, outside the network's subnets", n.Name, s)
		}
		if o, dup := owner[s]; dup {
			t.Errorf("%s and %s both got %s", o, n.Name, s)
		}
		owner[s] = n.Name
		a, err := subnet.ParseLeaseAttrs([]byte(e2etest.EtcdGet(t, l, e2etest.LeaseKey(s))))
		if err != nil || a.NodeName != n.Name {
			t.Errorf("etcd's lease of %s: %+v (%v), want node %s", s, a, err, n.Name)
		}
	}
	converged := e2etest.Poll(t, "every node programs every other", 60*time.Second, func() error {
		for _, n := range all {
			for _, o := range owner {
				if o == n.Name {
					continue
				}
				if err := l.CheckPeerNode(n, byName[o]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	t.Logf("FIGURE race: full mesh of %d nodes programmed %v after the last was ready", nodes, converged.Round(time.Millisecond))

	t.Run("two nodes race for the last subnet", func(t *testing.T) {
		first, err := l.AddPod(ctx, all[0])
		if err != nil {
			t.Fatal(err)
		}
		last, err := l.AddPod(ctx, all[nodes-1])
		if err != nil {
			t.Fatal(err)
		}
		tr := e2etest.StartTraffic(t, e2etest.PodPair(t, l, first, last), e2etest.PodPair(t, l, last, first), e2etest.NodePair(t, l, all[1], last))
		e2etest.EtcdPut(t, l, e2etest.ConfigKey, e2etest.SubnetsConfig(nodes+1))
		var racers []*lab.Node
		for range 2 {
			n, err := l.PrepareNode(ctx)
			if err != nil {
				t.Fatal(err)
			}
			racers = append(racers, n)
		}
		startAll(t, l, racers)
		var winner, loser *lab.Node
		e2etest.Poll(t, "one racer ready and the other gone", 60*time.Second, func() error {
			winner, loser = nil, nil
			for i, n := range racers {
				other := racers[1-i]
				if _, exited := labtest.WeftdExit(l, n); exited {
					if e, err := l.Env(other); err == nil && e.Ready {
						winner, loser = other, n
						return nil
					}
				}
			}
			return fmt.Errorf("no outcome yet")
		})
		code, _ := labtest.WeftdExit(l, loser)
		t.Logf("%s won %s; %s exited with code %d", winner.Name, e2etest.Env(t, l, winner).Subnet, loser.Name, code)
		if code == 0 {
			t.Errorf("%s exited with code 0, want non-zero", loser.Name)
		}
		if log := e2etest.NodeLog(t, loser); !strings.Contains(log, "no free subnet") {
			t.Errorf("%s's log does not say \"no free subnet\":\n%s", loser.Name, log)
		}
		if got, want := e2etest.Env(t, l, winner).Subnet, netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", nodes+1)); got != want {
			t.Errorf("%s got %s, want the last free subnet %s", winner.Name, got, want)
		}
		if _, exited := labtest.WeftdExit(l, winner); exited {
			t.Errorf("the winner %s exited too", winner.Name)
		}
		time.Sleep(time.Second)
		e2etest.CheckTraffic(t, tr, first.Name+"→"+last.Name, last.Name+"→"+first.Name, all[1].Name+"→"+last.Name)
	})
}

// startAll starts weftd on every node at once.
func startAll(t *testing.T, l *lab.Lab, nodes []*lab.Node) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = l.StartWeftd(n) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
