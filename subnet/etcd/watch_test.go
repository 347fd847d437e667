package etcd_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

// watching records what a background Watch reports.
type watching struct {
	mu    sync.Mutex
	last  etcd.LeaseSet
	calls int
	done  chan error
}

func startWatch(t *testing.T, m *etcd.Manager) *watching {
	ctx, cancel := context.WithCancel(t.Context())
	w := &watching{done: make(chan error, 1)}
	go func() {
		w.done <- m.Watch(ctx, func(ls etcd.LeaseSet) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if ls.Revision < w.last.Revision {
				t.Errorf("lease set revision went back from %d to %d", w.last.Revision, ls.Revision)
			}
			w.last = ls
			w.calls++
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-w.done; err != nil {
			t.Errorf("Watch returned %v after cancel, want nil", err)
		}
	})
	return w
}

func (w *watching) snapshot() (etcd.LeaseSet, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.calls
}

// expect waits until the reported set renders as want.
func (w *watching) expect(t *testing.T, what, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ls, calls := w.snapshot()
		if got = render(ls); calls > 0 && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: lease set:\n%s\nwant:\n%s", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchEvents(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	putConfig(t, prefix, net16)
	cfg := parseConfig(t, net16)
	var logs lockedBuffer
	watcher := newNode(t, srv.Client(), prefix, "", func(o *etcd.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	occupy(t, prefix, map[string]string{"10.244.1.0-24": weftValue(t, 1, "a")})
	w := startWatch(t, watcher.m)
	w.expect(t, "initial list", `10.244.1.0/24 reserved public=192.0.2.2 vni=1 mac=02:00:00:00:00:01 node="a" format=1
`)

	b := newNode(t, srv.Client(), prefix, "b", nil)
	bLease := acquireAt(t, b, cfg, "10.244.2.0/24", attrsFor(2))
	w.expect(t, "after an ADD", `10.244.1.0/24 reserved public=192.0.2.2 vni=1 mac=02:00:00:00:00:01 node="a" format=1
10.244.2.0/24 lease public=192.0.2.3 vni=1 mac=02:00:00:00:00:02 node="b" format=1
`)

	a2 := attrsFor(2)
	a2.VtepMAC = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0xbb}
	a2.GossipAddr = mustAddrPort("192.0.2.3:7946")
	if _, err := b.m.UpdateAttrs(testCtx(t), bLease, a2); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "after an UPDATE", `10.244.1.0/24 reserved public=192.0.2.2 vni=1 mac=02:00:00:00:00:01 node="a" format=1
10.244.2.0/24 lease public=192.0.2.3 vni=1 mac=02:bb:00:00:00:bb node="b" format=1 gossip=192.0.2.3:7946
`)

	occupy(t, prefix, map[string]string{"10.244.3.0-24": `{"PublicIP":"192.0.2.9"}`})
	w.expect(t, "after a malformed ADD", `10.244.1.0/24 reserved public=192.0.2.2 vni=1 mac=02:00:00:00:00:01 node="a" format=1
10.244.2.0/24 lease public=192.0.2.3 vni=1 mac=02:bb:00:00:00:bb node="b" format=1 gossip=192.0.2.3:7946
malformed `+prefix+`/subnets/10.244.3.0-24 subnet=10.244.3.0/24: invalid lease: BackendData is missing
`)
	if err := watcher.m.Reclaim(testCtx(t), mustPrefix("10.244.1.0/24")); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "after a DELETE", `10.244.2.0/24 lease public=192.0.2.3 vni=1 mac=02:bb:00:00:00:bb node="b" format=1 gossip=192.0.2.3:7946
malformed `+prefix+`/subnets/10.244.3.0-24 subnet=10.244.3.0/24: invalid lease: BackendData is missing
`)
	if n := strings.Count(logs.String(), "ignoring malformed lease"); n != 1 {
		t.Fatalf("malformed key logged %d times over several events, want once:\n%s", n, logs.String())
	}
	occupy(t, prefix, map[string]string{"10.244.3.0-24": "still bad"})
	waitFor(t, "the rewritten malformed key to be logged", 20*time.Second, func() bool {
		return strings.Count(logs.String(), "ignoring malformed lease") == 2
	})
}

// acquireAt acquires subnet s for n by preferring it in n's local state.
func acquireAt(t *testing.T, n *node, cfg *subnet.Config, s string, attrs subnet.LeaseAttrs) *subnet.Lease {
	t.Helper()
	prefix := n.m.Options().Prefix
	state := fmt.Sprintf(`{"NodeName":%q,"Prefix":%q,"Subnet":%q,"EtcdLease":0}`, n.name, prefix, s)
	if err := os.WriteFile(filepath.Join(n.stateDir, etcd.StateFileName), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := n.m.Acquire(testCtx(t), cfg, attrs)
	if err != nil {
		t.Fatal(err)
	}
	if l.Subnet.String() != s {
		t.Fatalf("acquired %s, want %s", l.Subnet, s)
	}
	return l
}

// TestWatchCompactionRelist cuts the watcher off etcd while leases change and the history is
// compacted: when it reconnects it cannot resume and must list everything again.
func TestWatchCompactionRelist(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	p, err := srv.NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cli, err := p.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	watcher := newNode(t, cli, prefix, "", func(o *etcd.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	occupy(t, prefix, map[string]string{"10.244.1.0-24": weftValue(t, 1, "a"), "10.244.2.0-24": weftValue(t, 2, "b")})
	w := startWatch(t, watcher.m)
	w.expect(t, "initial list", `10.244.1.0/24 reserved public=192.0.2.2 vni=1 mac=02:00:00:00:00:01 node="a" format=1
10.244.2.0/24 reserved public=192.0.2.3 vni=1 mac=02:00:00:00:00:02 node="b" format=1
`)
	p.Cut()
	if _, err := srv.Client().Delete(testCtx(t), prefix+"/subnets/10.244.1.0-24"); err != nil {
		t.Fatal(err)
	}
	occupy(t, prefix, map[string]string{"10.244.3.0-24": weftValue(t, 3, "c"), "10.244.2.0-24": weftValue(t, 4, "b")})
	if _, err := srv.Compact(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.Restore()
	w.expect(t, "after the relist", `10.244.2.0/24 reserved public=192.0.2.5 vni=1 mac=02:00:00:00:00:04 node="b" format=1
10.244.3.0/24 reserved public=192.0.2.4 vni=1 mac=02:00:00:00:00:03 node="c" format=1
`)
	if !strings.Contains(logs.String(), "fell behind a compaction") {
		t.Fatalf("no relist after compaction in the logs:\n%s", logs.String())
	}
}

// TestWatchCoalesces checks that a burst of changes is reported in few calls, ending with the
// whole burst.
func TestWatchCoalesces(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	watcher := newNode(t, srv.Client(), prefix, "", func(o *etcd.Options) { o.Coalesce = 300 * time.Millisecond })
	w := startWatch(t, watcher.m)
	waitFor(t, "the initial list", 20*time.Second, func() bool { _, calls := w.snapshot(); return calls == 1 })
	const burst = 60
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			key := fmt.Sprintf("%s/subnets/10.244.%d.0-24", prefix, i+1)
			if _, err := srv.Client().Put(testCtx(t), key, weftValue(t, i, fmt.Sprint("n", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, "the whole burst", 20*time.Second, func() bool { ls, _ := w.snapshot(); return len(ls.Leases) == burst })
	if _, calls := w.snapshot(); calls-1 > burst/3 {
		t.Fatalf("%d changes reported in %d calls, want them coalesced", burst, calls-1)
	}
}

// TestOutage stops etcd under a node that holds its lease and watches: both keep going, EtcdUp
// follows etcd, and the watch sees changes made after the restart.
func TestOutage(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	n := newNode(t, srv.Client(), prefix, "n1", func(o *etcd.Options) { o.TTL = time.Hour })
	l, err := n.m.Acquire(testCtx(t), parseConfig(t, net16), attrsFor(1))
	if err != nil {
		t.Fatal(err)
	}
	r := startKeepAlive(t, n.m, l)
	w := startWatch(t, n.m)
	waitFor(t, "the initial list", 20*time.Second, func() bool { ls, _ := w.snapshot(); return len(ls.Leases) == 1 })
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, "EtcdUp to turn false", 20*time.Second, func() bool { return !n.m.EtcdUp() })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "EtcdUp to turn true", 30*time.Second, func() bool { return n.m.EtcdUp() })
	occupy(t, prefix, map[string]string{"10.244.200.0-24": weftValue(t, 2, "after")})
	waitFor(t, "the watch to see a change after the outage", 30*time.Second, func() bool {
		ls, _ := w.snapshot()
		return len(ls.Leases) == 2
	})
	select {
	case err := <-r.done:
		t.Fatalf("KeepAlive returned %v across an outage shorter than the TTL", err)
	default:
	}
	ttl, err := srv.Client().TimeToLive(testCtx(t), clientv3.LeaseID(l.EtcdLease))
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("etcd lease after the outage: %v, %v", ttl, err)
	}
}
