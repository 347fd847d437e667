package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/internal/poll"
)

var (
	binOnce sync.Once
	harness = &labtest.Harness{ModuleDir: "..", Prefix: "wdt"}
	binErr  error
)

// startLab runs a lab of n nodes with one pod each, with weftd built from this module.
func startLab(t *testing.T, n int) (*lab.Lab, []*lab.Node, []*lab.Pod) {
	t.Helper()
	nstest.RequireRoot(t)
	binOnce.Do(func() {
		harness.BinDir, binErr = os.MkdirTemp("", "weft-daemon-test-bin")
		if binErr == nil {
			binErr = lab.Build("..", harness.BinDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	l, nodes := harness.Lab(t, n, 1)
	return l, nodes, l.State().Pods
}

func get(t *testing.T, l *lab.Lab, node *lab.Node, path string) (int, string) {
	t.Helper()
	n, err := l.NodeNS(node)
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := lab.HTTPGet(context.Background(), n, "http://"+nodeapi.DefaultHealthAddr+path)
	if err != nil {
		t.Fatal(err)
	}
	return code, string(body)
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	if _, err := poll.Until(context.Background(), what, timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// TestTwoNodes checks a two-node fabric: subnet.env, readiness, metrics, /debug/peers, rules and
// the peer entries.
func TestTwoNodes(t *testing.T) {
	l, nodes, pods := startLab(t, 2)
	e1, err := l.Env(nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(nodes[0].Dir, "subnet.env"))
	if err != nil {
		t.Fatal(err)
	}
	// The lease's expiry is its TTL (24 h) after its acquisition or last renewal.
	if left := time.Until(e1.LeaseExpiry); left < 23*time.Hour || left > 24*time.Hour {
		t.Errorf("WEFT_LEASE_EXPIRY %s: %v away, want about the 24h TTL", e1.LeaseExpiry, left)
	}
	want := fmt.Sprintf("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=%s/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\nWEFT_READY=true\nWEFT_LEASE_EXPIRY=%s\n",
		e1.Gateway(), e1.LeaseExpiry.UTC().Format(time.RFC3339))
	if string(raw) != want {
		t.Errorf("subnet.env:\n%s\nwant:\n%s", raw, want)
	}
	e2, err := l.Env(nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	if e1.Subnet == e2.Subnet || !e1.Network.Contains(e2.Subnet.Addr()) {
		t.Errorf("subnets %s and %s", e1.Subnet, e2.Subnet)
	}
	for i, pair := range [][2]int{{0, 1}, {1, 0}} {
		if err := l.CheckPeerNode(nodes[pair[0]], nodes[pair[1]]); err != nil {
			t.Error(err)
		}
		n, _ := l.NS(pods[pair[0]].Netns)
		if err := lab.Ping(n, pods[pair[1]].IP, i, 2*time.Second); err != nil {
			t.Errorf("pod ping: %v", err)
		}
	}
	if code, body := get(t, l, nodes[0], "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, _ := get(t, l, nodes[0], "/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	waitUntil(t, "probe and metrics", 10*time.Second, func() error {
		_, body := get(t, l, nodes[0], "/metrics")
		for _, m := range []string{
			"weft_etcd_up 1", "weft_ready 1", `weft_peers{source="etcd"} 1`, `weft_peer_reachable{peer="node2"} 1`,
			"weft_gossip_members 2", "weft_reconcile_total",
		} {
			if !strings.Contains(body, m) {
				return fmt.Errorf("/metrics lacks %q", m)
			}
		}
		return nil
	})
	_, body := get(t, l, nodes[0], "/debug/peers")
	var dp struct {
		Node  string
		Ready bool
		Peers []struct {
			Name   string
			Subnet string
			Probe  *struct{ Reachable bool }
		}
	}
	if err := json.Unmarshal([]byte(body), &dp); err != nil {
		t.Fatalf("/debug/peers: %v\n%s", err, body)
	}
	if dp.Node != "node1" || !dp.Ready || len(dp.Peers) != 1 || dp.Peers[0].Name != "node2" || dp.Peers[0].Subnet != e2.Subnet.String() {
		t.Errorf("/debug/peers = %s", body)
	}
	n1, _ := l.NodeNS(nodes[0])
	if err := n1.Do(func(ns.NetNS) error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		for _, c := range [][2]string{{"nat", nodeapi.ChainMasq}, {"filter", nodeapi.ChainForward}} {
			if ok, err := ipt.ChainExists(c[0], c[1]); err != nil || !ok {
				return fmt.Errorf("chain %s/%s missing (%v)", c[0], c[1], err)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// TestRestartKeepsDatapath restarts node1's weftd with SIGTERM and with SIGKILL while both nodes'
// kernel entries for each other are sampled and pods ping each other at 10 Hz: no entry may ever disappear, no
// ping may be lost, and node1 must come back with the same subnet and VTEP MAC.
func TestRestartKeepsDatapath(t *testing.T) {
	l, nodes, pods := startLab(t, 2)
	e1, err := l.Env(nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	macBefore, err := os.ReadFile(filepath.Join(nodes[0].Dir, "state", "weft.1.mac"))
	if err != nil {
		t.Fatal(err)
	}
	// Each node must keep programming the other as it was before the restarts: same subnet, MAC and
	// address.
	want1, err := l.PeerOf(nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	want2, err := l.PeerOf(nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			stop := make(chan struct{})
			var missing, lost, sent atomic.Int64
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					if l.CheckPeer(nodes[1], want1) != nil || l.CheckPeer(nodes[0], want2) != nil {
						missing.Add(1)
					}
				}
			}()
			go func() {
				defer wg.Done()
				src, _ := l.NS(pods[1].Netns)
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					sent.Add(1)
					if lab.Ping(src, pods[0].IP, seq, time.Second) != nil {
						lost.Add(1)
					}
				}
			}()
			if err := l.StopWeftd(nodes[0], sig); err != nil {
				t.Fatal(err)
			}
			if err := l.StartWeftd(nodes[0]); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitReady(context.Background(), nodes[0], 30*time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // keep sampling a little after ready
			close(stop)
			wg.Wait()
			if missing.Load() != 0 {
				t.Errorf("an entry between node1 and node2 was missing in %d samples during the restart", missing.Load())
			}
			if lost.Load() != 0 {
				t.Errorf("%d of %d pings lost during the restart", lost.Load(), sent.Load())
			}
			t.Logf("%d pings, %d lost", sent.Load(), lost.Load())
			after, err := l.Env(nodes[0])
			if err != nil || after.Subnet != e1.Subnet {
				t.Errorf("subnet after restart: %v (%v), want %s", after, err, e1.Subnet)
			}
			macAfter, err := os.ReadFile(filepath.Join(nodes[0].Dir, "state", "weft.1.mac"))
			if err != nil || string(macAfter) != string(macBefore) {
				t.Errorf("VTEP MAC after restart %q, before %q (%v)", macAfter, macBefore, err)
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if harness.BinDir != "" {
		os.RemoveAll(harness.BinDir)
	}
	os.Exit(code)
}
