package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/backoff"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/internal/poll"
	"github.com/weft-net/weft/peerview"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// fakeStore is an etcd that answers as the test says.
type fakeStore struct {
	mu sync.Mutex
	// acquire answers Acquire; nil means etcd does not answer (the call times out).
	acquire func() (*subnet.Lease, error)
	last    netip.Prefix
	expiry  time.Time
	// lose ends the running KeepAlive with ErrLeaseLost.
	lose chan struct{}
}

func (f *fakeStore) setAcquire(fn func() (*subnet.Lease, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acquire = fn
}

func (f *fakeStore) Acquire(ctx context.Context, _ *subnet.Config, _ subnet.LeaseAttrs) (*subnet.Lease, error) {
	f.mu.Lock()
	fn := f.acquire
	f.mu.Unlock()
	if fn == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
		return nil, context.DeadlineExceeded
	}
	return fn()
}

func (f *fakeStore) KeepAlive(ctx context.Context, l *subnet.Lease) error {
	select {
	case <-ctx.Done():
		return nil
	case <-f.lose:
		return fmt.Errorf("%w: %s: key deleted", weftetcd.ErrLeaseLost, l.Subnet)
	}
}

func (f *fakeStore) Watch(ctx context.Context, _ func(weftetcd.LeaseSet)) error {
	<-ctx.Done()
	return nil
}

func (f *fakeStore) LastSubnet() (netip.Prefix, bool) { return f.last, f.last.IsValid() }
func (f *fakeStore) EtcdUp() bool                     { return true }
func (f *fakeStore) LeaseExpiry() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.expiry
}

// fakeBackend programs nothing and fails SetPeers as the test says.
type fakeBackend struct {
	mu    sync.Mutex
	err   error
	peers []backend.Peer
}

func (b *fakeBackend) setErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

func (b *fakeBackend) SetPeers(p []backend.Peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peers = p
	return b.err
}

// programmed renders the last peer set, one "name subnet" each.
func (b *fakeBackend) programmed() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, p := range b.peers {
		out = append(out, p.Name+" "+p.Subnet.String())
	}
	return strings.Join(out, ", ")
}

func (b *fakeBackend) EnsureDevice(context.Context) error { return nil }
func (b *fakeBackend) Run(ctx context.Context) error      { <-ctx.Done(); return nil }
func (b *fakeBackend) MTU() int                           { return 1450 }
func (b *fakeBackend) Stats() backend.Stats               { return backend.Stats{} }

type fakeMember struct {
	metas []gossip.Meta
	joins []netip.AddrPort
}

func (m *fakeMember) SetMeta(meta gossip.Meta) error   { m.metas = append(m.metas, meta); return nil }
func (m *fakeMember) JoinAddrs(addrs []netip.AddrPort) { m.joins = addrs }
func (m *fakeMember) Run(ctx context.Context) error    { <-ctx.Done(); return nil }
func (m *fakeMember) ReloadKeys() error                { return nil }
func (m *fakeMember) Stats() gossip.MemberStats        { return gossip.MemberStats{} }

type fakeView struct{}

func (fakeView) SetLeases([]subnet.Lease)      {}
func (fakeView) SetLocalSubnet(netip.Prefix)   {}
func (fakeView) SetLocal(backend.Local)        {}
func (fakeView) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (fakeView) Snapshot() peerview.Snapshot   { return peerview.Snapshot{} }
func (fakeView) Stats() peerview.ViewStats     { return peerview.ViewStats{} }

func testLease(sn string, etcdLease int64) func() (*subnet.Lease, error) {
	return func() (*subnet.Lease, error) {
		return &subnet.Lease{Subnet: netip.MustParsePrefix(sn), EtcdLease: etcdLease, Attrs: testAttrs}, nil
	}
}

var (
	testNetCfg = func() *subnet.Config {
		c, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`))
		if err != nil {
			panic(err)
		}
		return c
	}()
	testAttrs = subnet.LeaseAttrs{
		PublicIP: netip.MustParseAddr("192.0.2.1"), BackendType: subnet.BackendVXLAN, VNI: 1,
		VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Format: subnet.LeaseFormat, NodeName: "n1",
	}
	peerB = backend.Peer{Name: "n2", Subnet: netip.MustParsePrefix("10.244.2.0/24"), PublicIP: netip.MustParseAddr("192.0.2.2"),
		VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	peerC = backend.Peer{Name: "n3", Subnet: netip.MustParsePrefix("10.244.3.0/24"), PublicIP: netip.MustParseAddr("192.0.2.3"),
		VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}}
)

// testNode is a node over fakes whose subnet.env writes are kept in envs.
type testNode struct {
	*node
	store  *fakeStore
	be     *fakeBackend
	member *fakeMember
	envs   []subnet.Env
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	tn := &testNode{store: &fakeStore{lose: make(chan struct{})}, be: &fakeBackend{}, member: &fakeMember{}}
	tn.node = &node{
		cfg: nodeConfig{
			name: "n1", network: testNetCfg, attrs: testAttrs, ipMasq: true, stateDir: t.TempDir(), resync: time.Hour,
			retry: backoff.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), store: tn.store, be: tn.be, view: fakeView{},
		member: tn.member, prober: newProber(0, slog.New(slog.DiscardHandler)),
		publish: func(e *subnet.Env) error { tn.envs = append(tn.envs, *e); return nil },
	}
	tn.metrics = newMetrics(tn.gauges())
	return tn
}

// render is the node's state and the last subnet.env it published, as text.
func (tn *testNode) render() string {
	s := tn.snapshot()
	var b strings.Builder
	switch {
	case s.lease == nil:
		b.WriteString("lease=none")
	case s.held:
		fmt.Fprintf(&b, "lease=%s held", s.lease.Subnet)
	default:
		fmt.Fprintf(&b, "lease=%s unconfirmed", s.lease.Subnet)
	}
	fmt.Fprintf(&b, " programmed=%t", s.programmed)
	if err := s.ready(); err != nil {
		fmt.Fprintf(&b, " not-ready(%v)", err)
	} else {
		b.WriteString(" ready")
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	if len(tn.envs) > 0 {
		e := tn.envs[len(tn.envs)-1]
		b.WriteString("\nenv " + strings.ReplaceAll(strings.TrimSpace(string(e.Marshal())), "\n", " "))
	}
	return b.String()
}

// refusedPeer is the error of a peer whose entries the kernel refused.
func refusedPeer(p backend.Peer) error {
	return &backend.PeerError{Peer: p.Name, Subnet: p.Subnet, Reason: backend.ReasonKernel,
		Err: fmt.Errorf("%w: %w", backend.ErrRefusedPeer, syscall.EINVAL)}
}

// TestKernelErrors is the table of what of a SetPeers error makes the node unready.
func TestKernelErrors(t *testing.T) {
	eperm := &backend.PeerError{Peer: "n2", Subnet: peerB.Subnet, Err: fmt.Errorf("add route: %w", syscall.EPERM)}
	peerN9 := backend.Peer{Name: "n9", Subnet: netip.MustParsePrefix("10.244.9.0/24")}
	three := []backend.Peer{peerB, peerC, peerN9}
	tests := []struct {
		name  string
		err   error
		peers []backend.Peer
		want  string // "" ready
	}{
		{"no error", nil, three, ""},
		{"one invalid peer of one", errors.Join(invalidPeer()), []backend.Peer{peerB}, ""},
		{"one refused peer of one", errors.Join(refusedPeer(peerB)), []backend.Peer{peerB}, ""},
		{"one refused peer of three", errors.Join(refusedPeer(peerB)), three, ""},
		{"two of three peers, twice each", errors.Join(refusedPeer(peerB), refusedPeer(peerB), refusedPeer(peerC)), three, ""},
		{"every peer of two", errors.Join(refusedPeer(peerB), invalidPeer()), []backend.Peer{peerB, peerN9}, "every peer failed (2 of 2)"},
		{"two failing, one not in the set", errors.Join(refusedPeer(peerB), invalidPeer()), []backend.Peer{peerB, peerC}, ""},
		{"every peer of three", errors.Join(refusedPeer(peerB), refusedPeer(peerC), invalidPeer()), three, "every peer failed (3 of 3)"},
		{"EPERM on one peer's entry", errors.Join(eperm), three, "operation not permitted"},
		{"the device is gone", errors.Join(refusedPeer(peerB), fmt.Errorf("weft.1: %w", syscall.ENODEV)), three, "no such device"},
	}
	for _, tt := range tests {
		got := kernelErrors(tt.err, tt.peers)
		switch {
		case tt.want == "" && got != nil:
			t.Errorf("%s: %v, want ready", tt.name, got)
		case tt.want != "" && (got == nil || !strings.Contains(got.Error(), tt.want)):
			t.Errorf("%s: %v, want an error mentioning %q", tt.name, got, tt.want)
		case strings.HasPrefix(tt.want, "every peer") && !errors.Is(got, ErrEveryPeerFailed):
			t.Errorf("%s: %v is not ErrEveryPeerFailed", tt.name, got)
		}
	}
}

// TestBackendRejectionsCounted: the peers the backend leaves out reach weft_peers_rejected and
// /debug/peers, once each however often the set is programmed.
func TestBackendRejectionsCounted(t *testing.T) {
	tn := newTestNode(t)
	tn.start(&subnet.Lease{Subnet: netip.MustParsePrefix("10.244.1.0/24"), Attrs: testAttrs}, true)
	tn.be.setErr(errors.Join(refusedPeer(peerB), refusedPeer(peerB), invalidPeer()))
	for range 3 {
		tn.program([]backend.Peer{peerB, peerC})
	}
	got := tn.peersRejected()
	if got["kernel-refused"] != 1 || got["invalid"] != 1 || got["public-ip"] != 0 || len(got) != len(backend.Reasons()) {
		t.Errorf("weft_peers_rejected %v, want kernel-refused 1, invalid 1, every other reason 0", got)
	}
	doc := tn.debugPeers().(nodeapi.Peers)
	if len(doc.Rejected) != 2 || doc.Rejected[0].Name != "n2" || doc.Rejected[0].Reason != "kernel-refused" ||
		doc.Rejected[0].PublicIP != peerB.PublicIP || doc.Rejected[1].Name != "n9" || doc.Rejected[1].Reason != "invalid" {
		t.Errorf("/debug/peers rejected %+v, want n2 (kernel-refused) and n9 (invalid)", doc.Rejected)
	}
	if !doc.Ready {
		t.Error("not ready, want ready: one refused peer and one invalid of two")
	}
}

func invalidPeer() error {
	return &backend.PeerError{Peer: "n9", Subnet: netip.MustParsePrefix("10.244.9.0/24"), Err: fmt.Errorf("%w: VtepMAC is multicast", backend.ErrInvalidPeer)}
}

// TestNodeStates drives the node's logic through start-up, programming, lease loss and
// re-acquisition with fakes, rendering its state and subnet.env after each step.
func TestNodeStates(t *testing.T) {
	ctx := t.Context()
	tn := newTestNode(t)
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"start: etcd gives the lease", func() error {
			tn.store.setAcquire(testLease("10.244.1.0/24", 7))
			l, held, err := acquireLease(ctx, tn.store, tn.cfg, time.Second, tn.log)
			tn.start(l, held)
			return err
		}, `lease=10.244.1.0/24 held programmed=false not-ready(initial peer set not programmed yet)
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=false`},
		{"first peer set programmed", func() error { tn.program([]backend.Peer{peerB}); return nil },
			`lease=10.244.1.0/24 held programmed=true ready
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=true`},
		{"an invalid peer does not make the node unready", func() error {
			tn.be.setErr(errors.Join(invalidPeer()))
			tn.program([]backend.Peer{peerB})
			return nil
		}, `lease=10.244.1.0/24 held programmed=true ready
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=true`},
		{"a peer whose entries the kernel refuses does not either", func() error {
			tn.be.setErr(errors.Join(refusedPeer(peerB)))
			tn.program([]backend.Peer{peerB, peerC})
			return nil
		}, `lease=10.244.1.0/24 held programmed=true ready
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=true`},
		{"every peer failing does", func() error {
			tn.be.setErr(errors.Join(refusedPeer(peerB), refusedPeer(peerC)))
			tn.program([]backend.Peer{peerB, peerC})
			return nil
		}, `lease=10.244.1.0/24 held programmed=true not-ready(last reconcile failed: every peer failed (2 of 2): peer "n2" (subnet 10.244.2.0/24): the kernel refused the peer's entries: invalid argument
peer "n3" (subnet 10.244.3.0/24): the kernel refused the peer's entries: invalid argument)
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=false`},
		{"a kernel failure, joined deep under an invalid peer, does", func() error {
			tn.be.setErr(errors.Join(invalidPeer(), fmt.Errorf("reconcile: %w", errors.New("device weft.1: operation not permitted"))))
			tn.program([]backend.Peer{peerB})
			return nil
		}, `lease=10.244.1.0/24 held programmed=true not-ready(last reconcile failed: reconcile: device weft.1: operation not permitted)
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=false`},
		{"repaired", func() error { tn.be.setErr(nil); tn.program(nil); return nil },
			`lease=10.244.1.0/24 held programmed=true ready
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=true`},
		{"lease lost", func() error { tn.lost(); return nil },
			`lease=10.244.1.0/24 unconfirmed programmed=true not-ready(no subnet lease held)
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=false`},
		{"the same subnet re-acquired", func() error { tn.store.setAcquire(testLease("10.244.1.0/24", 8)); return tn.confirmLease(ctx) },
			`lease=10.244.1.0/24 held programmed=true ready
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=true`},
		{"lost again, and the subnet went to another node", func() error {
			tn.lost()
			tn.store.setAcquire(testLease("10.244.5.0/24", 9))
			return tn.confirmLease(ctx)
		}, `error: the node's subnet changed
lease=10.244.1.0/24 unconfirmed programmed=true not-ready(no subnet lease held)
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=false`},
	}
	for _, s := range steps {
		var got string
		if err := s.do(); err != nil {
			got = "error: " + errorRoot(err) + "\n" + tn.render()
		} else {
			got = tn.render()
		}
		if got != s.want {
			t.Fatalf("step %q:\n%s\nwant:\n%s", s.name, got, s.want)
		}
	}
	if n := len(tn.member.metas); n != 1 || tn.member.metas[0].Subnet.String() != "10.244.1.0/24" {
		t.Errorf("gossip metas %v, want one for the re-acquired 10.244.1.0/24", tn.member.metas)
	}
}

// errorRoot is the sentinel an error of the node wraps, by its text: ErrSubnetChanged's.
func errorRoot(err error) string {
	if errors.Is(err, ErrSubnetChanged) {
		return ErrSubnetChanged.Error()
	}
	return err.Error()
}

// TestNodeStartsDuringOutage: with etcd down and local state naming the subnet, the node runs on
// a provisional lease (not ready) and keepLease confirms it once etcd answers; without local
// state, start-up waits for etcd.
func TestNodeStartsDuringOutage(t *testing.T) {
	tn := newTestNode(t)
	tn.store.last = netip.MustParsePrefix("10.244.1.0/24")
	l, held, err := acquireLease(t.Context(), tn.store, tn.cfg, 20*time.Millisecond, tn.log)
	if err != nil || held || l.Subnet != tn.store.last || l.Attrs.AttrVersion == 0 {
		t.Fatalf("acquireLease during an outage = %+v, held %t, %v; want a provisional lease of the local state's subnet with a fresh AttrVersion", l, held, err)
	}
	tn.start(l, held)
	const provisional = `lease=10.244.1.0/24 unconfirmed programmed=false not-ready(no subnet lease held)
env FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.1.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=true WEFT_READY=false`
	if got := tn.render(); got != provisional {
		t.Fatalf("started during the outage:\n%s\nwant:\n%s", got, provisional)
	}
	tn.program([]backend.Peer{peerB})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tn.keepLease(ctx) }()
	tn.store.setAcquire(testLease("10.244.1.0/24", 7))
	waitState(t, tn, "confirmed once etcd answers", "lease=10.244.1.0/24 held programmed=true ready")
	close(tn.store.lose)
	waitState(t, tn, "re-acquired after a loss", "lease=10.244.1.0/24 held programmed=true ready")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("keepLease = %v", err)
	}

	fresh := newTestNode(t)
	actx, acancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer acancel()
	if _, _, err := acquireLease(actx, fresh.store, fresh.cfg, time.Second, fresh.log); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquireLease without local state or etcd = %v, want it to wait until its context ends", err)
	}
}

func waitState(t *testing.T, tn *testNode, what, want string) {
	t.Helper()
	if _, err := poll.Until(t.Context(), what, 10*time.Second, func() error {
		if got, _, _ := strings.Cut(tn.render(), "\n"); got != want {
			return errors.New(got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReadinessIsOneDecision races successful programs against lease losses and checks that
// every subnet.env write says what the state said when it was written: a program finishing as
// the lease is lost can never publish WEFT_READY=true for a node without a lease.
func TestReadinessIsOneDecision(t *testing.T) {
	tn := newTestNode(t)
	tn.start(&subnet.Lease{Subnet: netip.MustParsePrefix("10.244.1.0/24"), Attrs: testAttrs}, true)
	var stale []string
	tn.publish = func(e *subnet.Env) error {
		// The contract: publish runs with the state lock held, so the state is the decision's.
		if tn.mu.TryLock() {
			tn.mu.Unlock()
			stale = append(stale, "published without the state lock held")
		}
		if e.Ready != (tn.st.ready() == nil) {
			stale = append(stale, fmt.Sprintf("published WEFT_READY=%t while the state says held=%t programmed=%t", e.Ready, tn.st.held, tn.st.programmed))
		}
		tn.envs = append(tn.envs, *e)
		return nil
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				tn.program([]backend.Peer{peerB})
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			if i%2 == 0 {
				tn.lost()
			} else {
				tn.confirmed(&subnet.Lease{Subnet: netip.MustParsePrefix("10.244.1.0/24"), Attrs: testAttrs})
			}
		}
		tn.lost()
	})
	wg.Wait()
	tn.mu.Lock()
	defer tn.mu.Unlock()
	if len(stale) > 0 {
		t.Fatalf("%d stale writes, first: %s", len(stale), stale[0])
	}
	if last := tn.envs[len(tn.envs)-1]; last.Ready {
		t.Fatal("the last subnet.env says ready, but the lease is lost")
	}
}

// TestNodeLeaseExpiry: subnet.env carries the lease's expiry, renewals move it, and a node whose
// lease expired without a renewal is not ready (the plugin then refuses ADD).
func TestNodeLeaseExpiry(t *testing.T) {
	tn := newTestNode(t)
	acquired := time.Now().Add(time.Hour).Truncate(time.Second)
	tn.start(&subnet.Lease{Subnet: netip.MustParsePrefix("10.244.1.0/24"), EtcdLease: 7, Expiry: acquired, Attrs: testAttrs}, true)
	tn.program(nil)
	if e := tn.envs[len(tn.envs)-1]; !e.Ready || !e.LeaseExpiry.Equal(acquired) {
		t.Fatalf("after acquisition: %+v, want ready with the expiry %s", e, acquired)
	}
	renewed := acquired.Add(time.Hour)
	tn.store.mu.Lock()
	tn.store.expiry = renewed
	tn.store.mu.Unlock()
	tn.update(func(*state) {})
	if e := tn.envs[len(tn.envs)-1]; !e.Ready || !e.LeaseExpiry.Equal(renewed) {
		t.Fatalf("after a renewal: %+v, want the renewed expiry %s", e, renewed)
	}
	tn.store.mu.Lock()
	tn.store.expiry = time.Now().Add(-time.Second)
	tn.store.mu.Unlock()
	tn.update(func(s *state) { s.lease.Expiry = time.Now().Add(-time.Second) })
	if e := tn.envs[len(tn.envs)-1]; e.Ready {
		t.Fatalf("after the expiry passed: %+v, want not ready", e)
	}
	if err := tn.ready(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("ready() = %v, want the expiry named", err)
	}
}

// TestRebootDuringOutage: a node that saw a lease set before it restarted programs those peers from
// its state dir at once, without etcd, and joins their gossip addresses.
func TestRebootDuringOutage(t *testing.T) {
	before := newTestNode(t)
	peerLease := func(node, sn, ip string) subnet.Lease {
		a := testAttrs
		a.NodeName, a.PublicIP, a.GossipAddr = node, netip.MustParseAddr(ip), netip.MustParseAddrPort(ip+":7946")
		a.VtepMAC = net.HardwareAddr{2, 0, 0, 0, 0, netip.MustParseAddr(ip).As4()[3]}
		return subnet.Lease{Subnet: netip.MustParsePrefix(sn), Attrs: a}
	}
	own := peerLease("n1", "10.244.1.0/24", "192.0.2.1")
	before.leaseHandler()(weftetcd.LeaseSet{Leases: []subnet.Lease{own, peerLease("n2", "10.244.2.0/24", "192.0.2.2"), peerLease("n3", "10.244.3.0/24", "192.0.2.3")}})

	after := newTestNode(t)
	after.cfg.stateDir = before.cfg.stateDir
	view, err := peerview.NewView(peerview.ViewConfig{LocalNode: "n1", Quiet: time.Millisecond, MaxDelay: 10 * time.Millisecond}, after.program)
	if err != nil {
		t.Fatal(err)
	}
	after.view = view
	view.SetLocalSubnet(own.Subnet)
	go view.Run(t.Context())
	after.start(&own, false)
	after.useSavedLeases()
	if _, err := poll.Until(t.Context(), "the saved peers programmed", 10*time.Second, func() error {
		if got := after.be.programmed(); got != "n2 10.244.2.0/24, n3 10.244.3.0/24" {
			return errors.New(got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(after.member.joins); got != "[192.0.2.2:7946 192.0.2.3:7946]" {
		t.Errorf("joined %s, want the saved peers' gossip addresses", got)
	}
}
