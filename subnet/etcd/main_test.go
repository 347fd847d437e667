package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/internal/poll"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

// srv is the etcd server every test of the package shares; each test works under its own prefix.
var srv *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, &srv) }

// testTimeout bounds every test's etcd calls; generous because the machine is shared.
const testTimeout = 60 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// syncWriter serialises writes to t.Output from concurrent goroutines.
type syncWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.t.Output().Write(p)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&syncWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// node is one simulated weft node: its manager and state directory.
type node struct {
	name     string
	stateDir string
	m        *etcd.Manager
}

// newNode returns a manager for node name under prefix, with quick retries for tests. opts, when
// not nil, adjusts the options.
func newNode(t testing.TB, cli *clientv3.Client, prefix, name string, opts func(*etcd.Options)) *node {
	t.Helper()
	n := &node{name: name, stateDir: t.TempDir()}
	o := etcd.Options{
		Prefix: prefix, NodeName: name, StateDir: n.stateDir,
		RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		CheckInterval: 500 * time.Millisecond, RequestTimeout: 2 * time.Second,
		Coalesce: 20 * time.Millisecond, Logger: testLogger(t),
	}
	if opts != nil {
		opts(&o)
	}
	m, err := etcd.New(cli, o)
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	return n
}

// restarted is the same node (name, state directory) with a new manager, as after a daemon restart.
func (n *node) restarted(t testing.TB, cli *clientv3.Client, prefix string) *node {
	t.Helper()
	r := newNode(t, cli, prefix, n.name, func(o *etcd.Options) { o.StateDir = n.stateDir })
	r.stateDir = n.stateDir
	return r
}

func putConfig(t testing.TB, prefix, cfg string) {
	t.Helper()
	if _, err := srv.Client().Put(testCtx(t), prefix+"/config", cfg); err != nil {
		t.Fatal(err)
	}
}

func parseConfig(t testing.TB, cfg string) *subnet.Config {
	t.Helper()
	c, err := subnet.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attrsFor returns plausible attributes of the i-th node.
func attrsFor(i int) subnet.LeaseAttrs {
	return subnet.LeaseAttrs{
		PublicIP:    netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%250)}),
		BackendType: subnet.BackendVXLAN,
		VNI:         1,
		VtepMAC:     net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)},
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// render writes a lease set as text, one line per key, for comparison with a golden string.
func render(ls etcd.LeaseSet) string {
	var b strings.Builder
	for _, l := range ls.Leases {
		a := l.Attrs
		kind := "lease"
		if l.Reserved() {
			kind = "reserved"
		}
		fmt.Fprintf(&b, "%s %s public=%s vni=%d mac=%s node=%q format=%d", l.Subnet, kind, a.PublicIP, a.VNI, a.VtepMAC, a.NodeName, a.Format)
		if a.GossipAddr.IsValid() {
			fmt.Fprintf(&b, " gossip=%s", a.GossipAddr)
		}
		b.WriteString("\n")
	}
	for _, bad := range ls.Malformed {
		fmt.Fprintf(&b, "malformed %s subnet=%s: %v\n", bad.Key, bad.Subnet, bad.Err)
	}
	return b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if _, err := poll.Until(context.Background(), what, d, func() error {
		if !cond() {
			return errors.New("condition false")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
