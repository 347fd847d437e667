package peerview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/gossiptest"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
)

var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// freePort returns a loopback port free for both TCP and UDP, never the same twice in this process.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
	t.Fatal("no free loopback port")
	return 0
}

// testCluster is a set of in-process nodes, each with a Member and a View, on 127.0.0.1. It plays
// etcd: leases lists every node's lease, and setLeases hands it to every view.
type testCluster struct {
	t      testing.TB
	log    *slog.Logger
	dir    string
	mu     sync.Mutex
	leases []subnet.Lease
	nodes  []*testNode
	// tweak adjusts each node's config before it starts.
	tweak func(*gossip.Config)
	// observe, when set (under mu), sees every member event of every node, before its view.
	observe func(node string, s gossip.MemberState)
}

// setObserver sets or, with nil, clears the cluster-wide member event hook.
func (c *testCluster) setObserver(f func(node string, s gossip.MemberState)) {
	c.mu.Lock()
	c.observe = f
	c.mu.Unlock()
}

type testNode struct {
	name   string
	idx    int
	cfg    gossip.Config
	member *gossip.Member
	view   *View
	rec    *sinkRecorder
	lease  subnet.Lease
	cancel context.CancelFunc
	done   chan error
}

func newTestCluster(t testing.TB) *testCluster {
	c := &testCluster{t: t, log: testLogger(t, slog.LevelWarn), dir: t.TempDir()}
	t.Cleanup(c.stopAll)
	return c
}

// testConfig is DefaultConfig on loopback with a fast join retry and a short dead node reclaim
// time (for the test that brings a failed node back at a new address).
func (c *testCluster) testConfig(name string) gossip.Config {
	cfg := gossip.DefaultConfig()
	cfg.NodeName = name
	cfg.BindAddr = netip.MustParseAddr("127.0.0.1")
	cfg.BindPort = freePort(c.t)
	cfg.Label = "weft-test"
	cfg.JoinRetryInterval = 200 * time.Millisecond
	cfg.DeadNodeReclaimTime = 500 * time.Millisecond
	cfg.Logger = c.log
	return cfg
}

// writeKeys writes a key file with the named test keys and returns its path.
func (c *testCluster) writeKeys(file, names string) string {
	path := filepath.Join(c.dir, file)
	gossiptest.WriteFile(c.t, path, gossiptest.KeyLines(names), 0o600)
	return path
}

type observerFunc func(gossip.MemberState)

func (f observerFunc) ObserveMember(s gossip.MemberState) { f(s) }

// start runs a new node with the given key file ("" for none) and returns it; the node's lease is
// added to every view. It does not wait for the node to join.
func (c *testCluster) start(name, keyFile string) *testNode {
	c.t.Helper()
	c.mu.Lock()
	idx := len(c.nodes) + 1
	c.mu.Unlock()
	return c.startAs(name, keyFile, idx)
}

// startAs starts a node whose lease is the idx-th subnet, replacing any lease for that subnet, and
// plays the new etcd snapshot.
func (c *testCluster) startAs(name, keyFile string, idx int) *testNode {
	c.t.Helper()
	return c.launch(name, keyFile, idx, true)
}

// launch starts a node whose lease is the idx-th subnet. With publish, its lease replaces any for
// that subnet and every node gets the new etcd snapshot; without, only the new node gets the
// current one.
func (c *testCluster) launch(name, keyFile string, idx int, publish bool) *testNode {
	c.t.Helper()
	cfg := c.testConfig(name)
	cfg.KeyFile = keyFile
	cfg.NodeKey = gossiptest.NodeKey(name)
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	n := &testNode{name: name, idx: idx, cfg: cfg, rec: &sinkRecorder{}, done: make(chan error, 2)}
	n.lease = lease(name, fmt.Sprintf("10.244.%d.0/24", idx), fmt.Sprintf("192.0.2.%d", idx),
		fmt.Sprintf("02:00:00:00:01:%02x", idx), 100)
	n.lease.Attrs.GossipAddr = cfg.Advertise()
	vcfg := DefaultViewConfig()
	vcfg.LocalNode = name
	vcfg.Logger = c.log
	var err error
	if n.view, err = NewView(vcfg, n.rec.sink); err != nil {
		c.t.Fatal(err)
	}
	n.view.SetLocalSubnet(n.lease.Subnet)
	cfg.Admit = n.view
	obs := observerFunc(func(s gossip.MemberState) {
		c.mu.Lock()
		f := c.observe
		c.mu.Unlock()
		if f != nil {
			f(name, s)
		}
		n.view.ObserveMember(s)
	})
	if n.member, err = gossip.NewMember(cfg, obs); err != nil {
		c.t.Fatal(err)
	}
	if err := n.member.SetMeta(n.meta()); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	if publish {
		c.leases = append(slices.DeleteFunc(c.leases, func(l subnet.Lease) bool { return l.Subnet == n.lease.Subnet }), n.lease)
	}
	c.mu.Unlock()
	if publish {
		c.setLeases()
	} else {
		c.mu.Lock()
		leases := slices.Clone(c.leases)
		c.mu.Unlock()
		n.view.SetLeases(leases)
		n.member.JoinAddrs(c.gossipAddrs())
	}

	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.view.Run(ctx) }()
	go func() { n.done <- n.member.Run(ctx) }()
	return n
}

// meta is the node's meta as its lease describes it.
func (n *testNode) meta() gossip.Meta {
	a := n.lease.Attrs
	return gossip.Meta{NodeName: n.name, Subnet: n.lease.Subnet, PublicIP: a.PublicIP, VtepMAC: a.VtepMAC, VNI: a.VNI, AttrVersion: a.AttrVersion}
}

// stop stops the node and waits for it; idempotent.
func (n *testNode) stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	for range 2 {
		if err := <-n.done; err != nil {
			t.Errorf("%s: %v", n.name, err)
		}
	}
}

func (c *testCluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { n.stop(c.t) })
	}
	wg.Wait()
}

// setLeases plays an etcd snapshot: every view gets the lease set and every member the gossip
// addresses in it.
func (c *testCluster) setLeases() {
	c.mu.Lock()
	leases := slices.Clone(c.leases)
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	addrs := c.gossipAddrs()
	for _, n := range nodes {
		n.view.SetLeases(leases)
		n.member.JoinAddrs(addrs)
	}
}

// gossipAddrs returns the gossip addresses in the leases.
func (c *testCluster) gossipAddrs() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []netip.AddrPort
	for _, l := range c.leases {
		if l.Attrs.GossipAddr.IsValid() {
			addrs = append(addrs, l.Attrs.GossipAddr)
		}
	}
	return addrs
}

// addLease adds a lease with no gossip member behind it and plays the etcd snapshot.
func (c *testCluster) addLease(l subnet.Lease) {
	c.mu.Lock()
	c.leases = append(c.leases, l)
	c.mu.Unlock()
	c.setLeases()
}

// peerDetail returns what a node's view says about the peer with the given name.
func peerDetail(n *testNode, name string) (nodeapi.Peer, bool) {
	for _, p := range n.view.Snapshot().Peers {
		if p.Name == name {
			return p, true
		}
	}
	return nodeapi.Peer{}, false
}

// waitViews polls until, in every node of nodes, the peer named target satisfies ok.
// On timeout it reports each view's state of the peer.
func waitViews(t testing.TB, limit time.Duration, nodes []*testNode, target, what string, ok func(nodeapi.Peer) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var bad []string
		for _, n := range nodes {
			if n.name == target {
				continue
			}
			if p, found := peerDetail(n, target); !found || !ok(p) {
				bad = append(bad, fmt.Sprintf("%s: %+v gossip=%+v", n.name, p, p.Gossip))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s; views:\n%s", limit, target, what, strings.Join(bad, "\n"))
		}
		<-tick.C
	}
}

func alive(p nodeapi.Peer) bool { return p.Liveness == nodeapi.LivenessAlive }

// renderPeers renders a sink call, one peer a line.
func renderPeers(peers []backend.Peer) string {
	var b strings.Builder
	for _, p := range peers {
		fmt.Fprintf(&b, "%s %s %s %s\n", p.Subnet, p.Name, p.PublicIP, p.VtepMAC)
	}
	return b.String()
}

func TestClusterConvergence(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	var nodes []*testNode
	for i := range 4 {
		nodes = append(nodes, c.start(fmt.Sprintf("node-%d", i+1), keys))
	}
	// A flannel node and a weft node whose gossip is down: programmed from etcd alone.
	c.addLease(flannelLease("10.244.50.0/24", "192.0.2.50", "0e:00:00:00:00:50"))
	c.addLease(lease("node-silent", "10.244.51.0/24", "192.0.2.51", "02:00:00:00:00:51", 1))

	for _, target := range nodes {
		waitViews(t, 10*time.Second, nodes, target.name, "alive everywhere", alive)
	}
	want := `10.244.1.0/24 node-1 192.0.2.1 02:00:00:00:01:01
10.244.2.0/24 node-2 192.0.2.2 02:00:00:00:01:02
10.244.3.0/24 node-3 192.0.2.3 02:00:00:00:01:03
10.244.4.0/24 node-4 192.0.2.4 02:00:00:00:01:04
10.244.50.0/24 192.0.2.50 192.0.2.50 0e:00:00:00:00:50
10.244.51.0/24 node-silent 192.0.2.51 02:00:00:00:00:51
`
	for _, n := range nodes {
		var wantN []string
		for _, line := range strings.SplitAfter(want, "\n") {
			if !strings.Contains(line, " "+n.name+" ") {
				wantN = append(wantN, line)
			}
		}
		n.rec.wait(t, n.name+"'s sink", func(p []backend.Peer) bool { return renderPeers(p) == strings.Join(wantN, "") })
		st := n.view.Stats()
		if st.Peers != 5 || st.PeersAlive != 3 || st.PeersWithoutGossip != 2 || st.Members != 3 || st.UsedClaims != 3 {
			t.Errorf("%s view stats %+v", n.name, st)
		}
		if ms := n.member.Stats(); ms.Members != 4 || ms.Keys != 1 || ms.PrimaryKeyID != gossip.KeyID(gossiptest.Keys["A"]) {
			t.Errorf("%s member stats %+v", n.name, ms)
		}
	}
}

func TestClusterLeave(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	nodes := []*testNode{c.start("node-1", keys), c.start("node-2", keys), c.start("node-3", keys)}
	waitViews(t, 10*time.Second, nodes, "node-3", "alive", alive)

	stopped := time.Now()
	nodes[2].stop(t)
	rest := nodes[:2]
	waitViews(t, 5*time.Second, rest, "node-3", "gone, route kept", func(p nodeapi.Peer) bool {
		return p.Liveness == nodeapi.LivenessUnreachable && p.Gossip.Status == nodeapi.MemberGone
	})
	t.Logf("member that left is gone everywhere after %s", time.Since(stopped).Round(time.Millisecond))
	for _, n := range rest {
		n.rec.wait(t, n.name+" keeps node-3's route", func(p []backend.Peer) bool {
			return strings.Contains(renderPeers(p), "node-3")
		})
	}

	// The lease goes: so does the peer.
	c.mu.Lock()
	c.leases = slices.DeleteFunc(c.leases, func(l subnet.Lease) bool { return l.Attrs.NodeName == "node-3" })
	c.mu.Unlock()
	c.setLeases()
	for _, n := range rest {
		n.rec.wait(t, n.name+" drops node-3", func(p []backend.Peer) bool {
			return len(p) == 1 && !strings.Contains(renderPeers(p), "node-3")
		})
	}
}

func TestClusterFailureDetection(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	c.tweak = func(cfg *gossip.Config) { cfg.SkipLeave = cfg.NodeName == "node-4" }
	var nodes []*testNode
	for i := range 4 {
		nodes = append(nodes, c.start(fmt.Sprintf("node-%d", i+1), keys))
	}
	waitViews(t, 10*time.Second, nodes, "node-4", "alive", alive)

	stopped := time.Now()
	nodes[3].stop(t)
	rest := nodes[:3]
	waitViews(t, 15*time.Second, rest, "node-4", "gone", func(p nodeapi.Peer) bool {
		return p.Liveness == nodeapi.LivenessUnreachable && p.Gossip.Status == nodeapi.MemberGone
	})
	detected := time.Now()
	t.Logf("stopped member detected as failed everywhere after %s", detected.Sub(stopped).Round(time.Millisecond))

	// It comes back under the same name at a new address and is accepted once the members'
	// DeadNodeReclaimTime has passed since they declared it dead (sooner, they reject the new
	// address as a conflict until the next push/pull).
	reclaim := nodes[0].cfg.DeadNodeReclaimTime
	waitFor(t, 2*reclaim, "the dead node reclaim time", func() bool { return time.Since(detected) > reclaim })
	c.tweak = nil
	back := c.startAs("node-4", keys, nodes[3].idx)
	waitViews(t, 10*time.Second, rest, "node-4", "alive at its new address", func(p nodeapi.Peer) bool {
		return alive(p) && p.Gossip.Addr == back.cfg.Advertise()
	})
}

func TestClusterRejectsOutsiders(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	nodes := []*testNode{c.start("node-1", keys), c.start("node-2", keys)}
	waitViews(t, 10*time.Second, nodes, "node-2", "alive", alive)

	// readsCluster: the outsider holds the cluster's key as a secondary, so it can read the
	// cluster's messages (members that try to join it, having its address from etcd, show up in its
	// own list) while the cluster cannot read its own.
	tests := []struct {
		name         string
		keys         string
		label        string
		readsCluster bool
	}{
		{"wrong key", c.writeKeys("other", "B"), "weft-test", false},
		{"primary key unknown to the cluster", c.writeKeys("other-first", "B,A"), "weft-test", true},
		{"no key", "", "weft-test", false},
		{"wrong label", keys, "other-cluster", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.tweak = func(cfg *gossip.Config) { cfg.Label = tt.label }
			out := c.start(fmt.Sprintf("outsider-%d", i), tt.keys)
			waitFor(t, 10*time.Second, "two failed join rounds", func() bool { return out.member.Stats().JoinFailures >= 2 })
			if got := out.member.Stats().Members; got != 1 && !tt.readsCluster {
				t.Errorf("outsider sees %d members", got)
			}
			for _, n := range nodes {
				if got := n.member.Stats().Members; got != 2 {
					t.Errorf("%s sees %d members", n.name, got)
				}
				if p, _ := peerDetail(n, out.name); p.Gossip != nil {
					t.Errorf("%s heard from the outsider: %+v", n.name, p.Gossip)
				}
			}
			out.stop(t)
		})
	}
}

func TestClusterKeyRotation(t *testing.T) {
	c := newTestCluster(t)
	var mu sync.Mutex
	var downs []string
	c.setObserver(func(node string, s gossip.MemberState) {
		if s.Status != gossip.StatusAlive {
			mu.Lock()
			downs = append(downs, fmt.Sprintf("%s saw %s %s", node, s.Name, s.Status))
			mu.Unlock()
		}
	})
	var nodes []*testNode
	for i := range 3 {
		name := fmt.Sprintf("node-%d", i+1)
		nodes = append(nodes, c.start(name, c.writeKeys(name, "A")))
	}
	for _, n := range nodes {
		waitViews(t, 10*time.Second, nodes, n.name, "alive", alive)
	}

	// The documented procedure, one node at a time: install B, make B primary, drop A. After each
	// node's reload, a meta change must reach every other node.
	version := int64(100)
	for _, step := range []string{"A,B", "B,A", "B"} {
		for _, n := range nodes {
			c.writeKeys(n.name, step)
			if err := n.member.ReloadKeys(); err != nil {
				t.Fatalf("%s reload %s: %v", n.name, step, err)
			}
			version++
			meta := n.meta()
			meta.AttrVersion = version
			meta.VtepMAC = mac(fmt.Sprintf("02:00:00:00:%02x:%02x", version&0xff, n.idx))
			if err := n.member.SetMeta(meta); err != nil {
				t.Fatal(err)
			}
			waitViews(t, 10*time.Second, nodes, n.name, fmt.Sprintf("MAC %s after keys %s", meta.VtepMAC, step),
				func(p nodeapi.Peer) bool { return p.VtepMAC == meta.VtepMAC.String() })
		}
	}
	for _, n := range nodes {
		if st := n.member.Stats(); st.Keys != 1 || st.PrimaryKeyID != gossip.KeyID(gossiptest.Keys["B"]) || st.KeyReloads != 3 {
			t.Errorf("%s member stats after rotation: %+v", n.name, st)
		}
	}
	mu.Lock()
	if len(downs) > 0 {
		t.Errorf("members went down during the rotation: %v", downs)
	}
	mu.Unlock()

	// The cluster now admits B only.
	c.setObserver(nil)
	newcomer := c.start("node-new", c.writeKeys("new", "B"))
	waitViews(t, 10*time.Second, nodes, newcomer.name, "alive", alive)
	stale := c.start("node-stale", c.writeKeys("stale", "A"))
	waitFor(t, 10*time.Second, "the stale node's join failures", func() bool { return stale.member.Stats().JoinFailures >= 2 })
	if got := stale.member.Stats().Members; got != 1 {
		t.Errorf("a node with the retired key sees %d members", got)
	}
}

func TestReloadKeysErrors(t *testing.T) {
	c := newTestCluster(t)
	path := c.writeKeys("keys", "A")
	cfg := c.testConfig("node-1")
	cfg.KeyFile = path
	m, err := gossip.NewMember(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	gossiptest.WriteFile(t, path, "garbage\n", 0o600)
	if err := m.ReloadKeys(); !errors.Is(err, gossip.ErrInvalidKeyFile) {
		t.Fatalf("bad file: %v", err)
	}
	if st := m.Stats(); st.Keys != 1 || st.PrimaryKeyID != gossip.KeyID(gossiptest.Keys["A"]) {
		t.Fatalf("a failed reload changed the keyring: %+v", st)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := m.ReloadKeys(); !errors.Is(err, gossip.ErrInvalidKeyFile) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	cfg.KeyFile = ""
	plain, err := gossip.NewMember(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.ReloadKeys(); !errors.Is(err, gossip.ErrNoKeyFile) {
		t.Fatalf("no key file: %v", err)
	}
	cfg.KeyFile = filepath.Join(c.dir, "missing")
	if _, err := gossip.NewMember(cfg, nil); !errors.Is(err, gossip.ErrInvalidKeyFile) {
		t.Fatalf("NewMember with a missing key file: %v", err)
	}
}

func TestClusterAttributeChangesWithoutEtcd(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	nodes := []*testNode{c.start("node-1", keys), c.start("node-2", keys), c.start("node-3", keys)}
	for _, n := range nodes {
		waitViews(t, 10*time.Second, nodes, n.name, "alive", alive)
	}
	// From here on etcd is cut off: no view gets another SetLeases.
	b := nodes[1]
	meta := b.meta()
	tests := []struct {
		name string
		edit func(*gossip.Meta)
		want string
	}{
		{"VTEP MAC", func(m *gossip.Meta) { m.VtepMAC = mac("02:00:00:00:99:02") }, "10.244.2.0/24 node-2 192.0.2.2 02:00:00:00:99:02"},
		{"public IP", func(m *gossip.Meta) { m.PublicIP = netip.MustParseAddr("198.51.100.2") }, "10.244.2.0/24 node-2 198.51.100.2 02:00:00:00:99:02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.edit(&meta)
			meta.AttrVersion++
			if err := b.member.SetMeta(meta); err != nil {
				t.Fatal(err)
			}
			for _, n := range []*testNode{nodes[0], nodes[2]} {
				n.rec.wait(t, n.name+" programs "+tt.want, func(p []backend.Peer) bool {
					return strings.Contains(renderPeers(p), tt.want+"\n")
				})
				if p, _ := peerDetail(n, b.name); p.Source != nodeapi.SourceGossip || p.Etcd.VtepMAC != "02:00:00:00:01:02" {
					t.Errorf("%s: %+v, want gossip attributes over the unchanged lease", n.name, p)
				}
			}
		})
	}
}

// TestClusterRefusesStrangers: mallory holds the keyring but no lease in etcd; whatever she claims
// (here node-2's subnet with a newer version and her own MAC), node-1 never admits her as a member,
// and node-2's peer keeps its attributes.
func TestClusterRefusesStrangers(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	nodes := []*testNode{c.start("node-1", keys), c.start("node-2", keys)}
	waitViews(t, 10*time.Second, nodes, "node-2", "alive", alive)
	n1 := nodes[0]
	mallory := c.launch("mallory", keys, 9, false)
	spoof := nodes[1].meta()
	spoof.NodeName = "mallory"
	spoof.VtepMAC = mac("02:66:66:66:66:66")
	spoof.AttrVersion = 1 << 40
	if err := mallory.member.SetMeta(spoof); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node-1 to refuse mallory", func() bool { return n1.member.Stats().Refused > 0 })
	time.Sleep(time.Second)
	if st := n1.member.Stats(); st.Members != 2 || st.RefusedMembers < 1 {
		t.Errorf("node-1's member stats %+v, want 2 members and mallory refused", st)
	}
	for _, m := range n1.view.Snapshot().Members {
		if m.Name == "mallory" {
			t.Errorf("node-1's view lists mallory: %+v", m)
		}
	}
	if p, _ := peerDetail(n1, "node-2"); p.VtepMAC != "02:00:00:00:01:02" || !alive(p) {
		t.Errorf("node-2's peer after the spoof: %+v", p)
	}
}

// TestClusterAdmitsOnceLeased: a new node whose lease has not reached the others yet is refused,
// and admitted (and programmed alive) once the etcd snapshot with its lease arrives.
func TestClusterAdmitsOnceLeased(t *testing.T) {
	c := newTestCluster(t)
	keys := c.writeKeys("keys", "A")
	nodes := []*testNode{c.start("node-1", keys), c.start("node-2", keys)}
	waitViews(t, 10*time.Second, nodes, "node-2", "alive", alive)
	n3 := c.launch("node-3", keys, 3, false)
	waitFor(t, 10*time.Second, "node-3 refused before its lease is known", func() bool { return nodes[0].member.Stats().Refused > 0 })
	c.mu.Lock()
	c.leases = append(c.leases, n3.lease)
	c.mu.Unlock()
	c.setLeases()
	waitViews(t, 10*time.Second, append(nodes, n3), "node-3", "alive once leased", alive)
}

// TestClusterImpostor: a member named node-2, with the keyring, at another address, claiming
// node-2's subnet with a higher version and its own MAC, is refused while node-2 is alive, after it
// left and while it is away, whether it signs with its own key or replays node-2's (a stolen key
// signs for the impostor's address, which is not the one node-2's lease records). node-2 comes back
// and is a member again; every peer keeps node-2's real attributes throughout.
func TestClusterImpostor(t *testing.T) {
	for _, key := range []string{"own key", "node-2's key"} {
		t.Run(key, func(t *testing.T) {
			c := newTestCluster(t)
			keys := c.writeKeys("keys", "A")
			nodes := []*testNode{c.start("node-1", keys), c.start("node-2", keys), c.start("node-3", keys)}
			waitViews(t, 10*time.Second, nodes, "node-2", "alive", alive)
			impostorKey := gossiptest.NodeKey("impostor")
			if key != "own key" {
				impostorKey = gossiptest.NodeKey("node-2")
			}
			c.tweak = func(cfg *gossip.Config) { cfg.NodeKey = impostorKey }
			impostor := c.launch("node-2", keys, 2, false)
			c.tweak = nil
			forged := impostor.meta()
			forged.VtepMAC, forged.AttrVersion = mac("02:66:66:66:66:66"), 1<<40
			if err := impostor.member.SetMeta(forged); err != nil {
				t.Fatal(err)
			}
			impostor.member.JoinAddrs(c.gossipAddrs())
			real := func(p nodeapi.Peer) bool {
				return p.VtepMAC == "02:00:00:00:01:02" && p.PublicIP.String() == "192.0.2.2"
			}
			waitFor(t, 10*time.Second, "the impostor refused", func() bool { return nodes[0].member.Stats().Refused > 0 })
			waitViews(t, 10*time.Second, []*testNode{nodes[0], nodes[2]}, "node-2", "real and alive", func(p nodeapi.Peer) bool { return real(p) && alive(p) })
			nodes[1].stop(t)
			time.Sleep(2 * time.Second)
			waitViews(t, 10*time.Second, []*testNode{nodes[0], nodes[2]}, "node-2", "real while away", real)
			back := c.startAs("node-2", keys, 2)
			waitViews(t, 10*time.Second, []*testNode{nodes[0], nodes[2], back}, "node-2", "real and alive again", func(p nodeapi.Peer) bool { return real(p) && alive(p) })
		})
	}
}

// TestClusterPartitionHeals: two groups that formed apart merge once one member learns (from etcd)
// an address of the other group, although none of them is alone.
func TestClusterPartitionHeals(t *testing.T) {
	a, b := newTestCluster(t), newTestCluster(t)
	a1, a2 := a.start("a-1", a.writeKeys("keys", "A")), a.start("a-2", a.writeKeys("keys", "A"))
	b1, b2 := b.startAs("b-1", b.writeKeys("keys", "A"), 3), b.startAs("b-2", b.writeKeys("keys", "A"), 4)
	all := []*testNode{a1, a2, b1, b2}
	members := func(want int) func() bool {
		return func() bool {
			for _, n := range all {
				if n.member.Stats().Members != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "two groups of two", members(2))
	// etcd shows every node the four leases; one member learns the other group's addresses.
	union := append(slices.Clone(a.leases), b.leases...)
	for _, n := range all {
		n.view.SetLeases(union)
	}
	a1.member.JoinAddrs(append(a.gossipAddrs(), b.gossipAddrs()...))
	waitFor(t, 10*time.Second, "one group of four", members(4))
}
