package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/lab"
)

// requireSoak skips a long variant unless WEFT_SOAK is set (make soak).
func requireSoak(t *testing.T) {
	t.Helper()
	if os.Getenv("WEFT_SOAK") == "" {
		t.Skip("skipped: soak test, run with WEFT_SOAK=1 (make soak)")
	}
}

// pingPair is one direction of traffic that startTraffic measures.
type pingPair struct {
	name string
	src  ns.NetNS
	dst  netip.Addr
}

func podPair(t *testing.T, l *lab.Lab, src *lab.Pod, dst *lab.Pod) pingPair {
	return pingPair{name: src.Name + "→" + dst.Name, src: mustNS(t, l, src.Netns), dst: dst.IP}
}

func nodePair(t *testing.T, l *lab.Lab, src *lab.Node, dst *lab.Pod) pingPair {
	return pingPair{name: src.Name + "→" + dst.Name, src: mustNS(t, l, src.Netns), dst: dst.IP}
}

// traffic pings every pair at 10 Hz. Each ping waits up to a second for its reply on its own, so
// the rate holds while replies are lost.
type traffic struct {
	done  chan struct{}
	wg    sync.WaitGroup
	pairs []*pairLog
}

type pairLog struct {
	pingPair
	mu      sync.Mutex
	results []pingResult
}

type pingResult struct {
	at      time.Time
	ok, set bool
}

// trafficStats sums up one pair's pings.
type trafficStats struct {
	name       string
	sent, lost int
	// outage is the longest run of lost pings, as time (one ping per 100 ms).
	outage time.Duration
	// tailOK counts the successful pings at the end, after the last loss.
	tailOK int
}

func (s trafficStats) String() string {
	return fmt.Sprintf("%s: %d pings, %d lost, longest outage %v", s.name, s.sent, s.lost, s.outage)
}

func startTraffic(t *testing.T, pairs ...pingPair) *traffic {
	t.Helper()
	tr := &traffic{done: make(chan struct{})}
	for _, p := range pairs {
		pl := &pairLog{pingPair: p}
		tr.pairs = append(tr.pairs, pl)
		tr.wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			var pings sync.WaitGroup
			defer pings.Wait()
			for seq := 0; ; seq++ {
				select {
				case <-tr.done:
					return
				case <-tick.C:
				}
				pl.mu.Lock()
				pl.results = append(pl.results, pingResult{at: time.Now()})
				pl.mu.Unlock()
				pings.Go(func() {
					ok := lab.Ping(pl.src, pl.dst, seq, time.Second) == nil
					pl.mu.Lock()
					pl.results[seq].ok, pl.results[seq].set = ok, true
					pl.mu.Unlock()
				})
			}
		})
	}
	t.Cleanup(func() { tr.stop() })
	return tr
}

// stop ends the traffic (once) and returns each pair's figures, in the order of the pairs.
func (tr *traffic) stop() []trafficStats {
	select {
	case <-tr.done:
	default:
		close(tr.done)
	}
	tr.wg.Wait()
	out := make([]trafficStats, len(tr.pairs))
	for i, pl := range tr.pairs {
		s := trafficStats{name: pl.name, sent: len(pl.results)}
		run := 0
		for _, r := range pl.results {
			if r.ok {
				run = 0
				s.tailOK++
				continue
			}
			s.lost++
			s.tailOK = 0
			run++
			s.outage = max(s.outage, time.Duration(run)*100*time.Millisecond)
		}
		out[i] = s
	}
	return out
}

// checkTraffic stops the traffic, logs every pair's figures and fails for each pair named in
// lossless that lost a ping and for each pair that did not end with at least 5 answered pings.
func checkTraffic(t *testing.T, tr *traffic, lossless ...string) []trafficStats {
	t.Helper()
	stats := tr.stop()
	for _, s := range stats {
		t.Log(s)
		switch {
		case slices.Contains(lossless, s.name) && s.lost > 0:
			t.Errorf("%s lost %d of %d pings", s.name, s.lost, s.sent)
		case s.tailOK < 5:
			t.Errorf("%s did not recover: only the last %d of %d pings were answered", s.name, s.tailOK, s.sent)
		}
	}
	return stats
}

// nodeLog returns node's weftd log.
func nodeLog(t *testing.T, n *lab.Node) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.Dir, "weftd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitLog waits until node's weftd log contains all of the given strings on one line.
func waitLog(t *testing.T, n *lab.Node, timeout time.Duration, substrs ...string) {
	t.Helper()
	poll(t, fmt.Sprintf("%s's log to show %q", n.Name, substrs), timeout, func() error {
		for _, line := range strings.Split(nodeLog(t, n), "\n") {
			if containsAll(line, substrs...) {
				return nil
			}
		}
		return fmt.Errorf("no such line")
	})
}

func containsAll(s string, substrs ...string) bool {
	for _, sub := range substrs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// inNode runs fn with an iptables handle inside node's namespace.
func inNode(t *testing.T, l *lab.Lab, n *lab.Node, fn func(*iptables.IPTables) error) error {
	t.Helper()
	return mustNS(t, l, n.Netns).Do(func(ns.NetNS) error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		return fn(ipt)
	})
}

// weftRules renders weft's iptables chains in node's namespace, and the jumps to them, as text.
func weftRules(t *testing.T, l *lab.Lab, n *lab.Node) string {
	t.Helper()
	var b strings.Builder
	err := inNode(t, l, n, func(ipt *iptables.IPTables) error {
		for _, c := range [][2]string{{"filter", "FORWARD"}, {"filter", "WEFT-FWD"}, {"nat", "POSTROUTING"}, {"nat", "WEFT-POSTRTG"}} {
			ok, err := ipt.ChainExists(c[0], c[1])
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintf(&b, "%s/%s missing\n", c[0], c[1])
				continue
			}
			rules, err := ipt.List(c[0], c[1])
			if err != nil {
				return err
			}
			for _, r := range rules {
				if strings.Contains(r, "WEFT") || strings.Contains(r, "weft") {
					fmt.Fprintf(&b, "%s %s\n", c[0], r)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// macWatch samples, every 10 ms, the MAC of a node's VXLAN device and every peer's entries for
// the node's subnet, and records when each first shows want.
type macWatch struct {
	done   chan struct{}
	result chan macTimes
}

// macTimes are when the node's device and each peer first carried the wanted MAC.
type macTimes struct {
	device time.Time
	peers  map[string]time.Time
	last   map[string]error
}

// propagation is how long after the device the last peer programmed the MAC (0 when the peers
// were first).
func (m macTimes) propagation() time.Duration {
	var last time.Time
	for _, at := range m.peers {
		if at.After(last) {
			last = at
		}
	}
	return max(0, last.Sub(m.device))
}

func watchMAC(l *lab.Lab, node *lab.Node, peers []*lab.Node, s netip.Prefix, want net.HardwareAddr) *macWatch {
	w := &macWatch{done: make(chan struct{}), result: make(chan macTimes, 1)}
	go func() {
		res := macTimes{peers: map[string]time.Time{}, last: map[string]error{}}
		defer func() { w.result <- res }()
		for {
			now := time.Now()
			if res.device.IsZero() {
				if mac, err := l.VTEPMAC(node); err == nil && mac.String() == want.String() {
					res.device = now
				}
			}
			for _, p := range peers {
				if _, ok := res.peers[p.Name]; ok {
					continue
				}
				err := l.CheckPeer(p, backend.Peer{Subnet: s, PublicIP: node.IP, VtepMAC: want})
				res.last[p.Name] = err
				if err == nil {
					res.peers[p.Name] = now
				}
			}
			if !res.device.IsZero() && len(res.peers) == len(peers) {
				return
			}
			select {
			case <-w.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

// wait returns the times once every peer has the MAC, or what was seen by timeout.
func (w *macWatch) wait(timeout time.Duration) macTimes {
	select {
	case r := <-w.result:
		return r
	case <-time.After(timeout):
		close(w.done)
		return <-w.result
	}
}

// entryWatch samples, every 10 ms, peers' entries for subnet s and counts the samples in which
// they were not exactly want at dst.
type entryWatch struct {
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples int
	bad     []string
}

func watchEntries(l *lab.Lab, peers []*lab.Node, s netip.Prefix, want net.HardwareAddr, dst netip.Addr) *entryWatch {
	w := &entryWatch{done: make(chan struct{})}
	w.wg.Go(func() {
		for {
			for _, p := range peers {
				err := l.CheckPeer(p, backend.Peer{Subnet: s, PublicIP: dst, VtepMAC: want})
				w.mu.Lock()
				w.samples++
				if err != nil {
					w.bad = append(w.bad, fmt.Sprintf("%s at %s: %v", p.Name, time.Now().Format("15:04:05.000"), err))
				}
				w.mu.Unlock()
			}
			select {
			case <-w.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return w
}

// stop returns the number of samples and the bad ones.
func (w *entryWatch) stop() (int, []string) {
	close(w.done)
	w.wg.Wait()
	return w.samples, w.bad
}

// checkEntries stops w and fails if any sample was bad.
func checkEntries(t *testing.T, w *entryWatch, what string) {
	t.Helper()
	n, bad := w.stop()
	t.Logf("%s: %d samples of the peers' entries, %d not as expected", what, n, len(bad))
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d samples not as expected, first: %s", what, len(bad), n, bad[0])
	}
}

// vtepMAC returns the VTEP MAC of node n's device.
func vtepMAC(t *testing.T, l *lab.Lab, n *lab.Node) net.HardwareAddr {
	t.Helper()
	mac, err := l.VTEPMAC(n)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// withEtcd runs fn with a client of the lab's etcd and a 10 s deadline, failing the test on error.
func withEtcd(t *testing.T, l *lab.Lab, fn func(ctx context.Context, cli *clientv3.Client) error) {
	t.Helper()
	cli, err := l.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fn(ctx, cli); err != nil {
		t.Fatal(err)
	}
}

// etcdPut writes key in the lab's etcd.
func etcdPut(t *testing.T, l *lab.Lab, key, value string) {
	t.Helper()
	withEtcd(t, l, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.Put(ctx, key, value)
		return err
	})
}

// etcdDelete deletes key from the lab's etcd.
func etcdDelete(t *testing.T, l *lab.Lab, key string) {
	t.Helper()
	withEtcd(t, l, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.Delete(ctx, key)
		return err
	})
}

// etcdGet reads key from the lab's etcd ("" when absent).
func etcdGet(t *testing.T, l *lab.Lab, key string) string {
	t.Helper()
	var v string
	withEtcd(t, l, func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, key)
		if err == nil && len(resp.Kvs) > 0 {
			v = string(resp.Kvs[0].Value)
		}
		return err
	})
	return v
}

const (
	configKey     = "/weft/network/config"
	subnetsPrefix = "/weft/network/subnets/"
)
