package etcdtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/etcdtest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var srv *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, &srv) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestEndpointsOnLoopback(t *testing.T) {
	eps := srv.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Fatalf("Endpoints() = %q, want one http://127.0.0.1:<port>", eps)
	}
}

func TestPrefixUnique(t *testing.T) {
	a, b := etcdtest.Prefix(t), etcdtest.Prefix(t)
	if a == b || !strings.HasPrefix(a, "/test/TestPrefixUnique/") {
		t.Fatalf("Prefix gave %q and %q, want two distinct /test/TestPrefixUnique/<n>", a, b)
	}
}

// TestStopRestart checks that the data survives a restart on the same port and that the clients
// handed out before reconnect by themselves.
func TestStopRestart(t *testing.T) {
	key := etcdtest.Prefix(t) + "/k"
	cli := srv.Client()
	if _, err := cli.Put(ctxT(t, 10*time.Second), key, "before"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); !errors.Is(err, etcdtest.ErrNotRunning) {
		t.Fatalf("second Stop: %v, want ErrNotRunning", err)
	}
	if _, err := cli.Get(ctxT(t, 300*time.Millisecond), key); err == nil {
		t.Fatal("Get succeeded while the server is stopped")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatalf("Restart of a running server: %v, want no-op", err)
	}
	resp, err := cli.Get(ctxT(t, 20*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before" {
		t.Fatalf("after restart %s = %v, want \"before\"", key, resp.Kvs)
	}
}

func TestCompact(t *testing.T) {
	key := etcdtest.Prefix(t) + "/k"
	cli := srv.Client()
	first, err := cli.Put(ctxT(t, 10*time.Second), key, "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctxT(t, 10*time.Second), key, "2"); err != nil {
		t.Fatal(err)
	}
	rev, err := srv.Compact(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rev <= first.Header.Revision {
		t.Fatalf("compacted at %d, want after %d", rev, first.Header.Revision)
	}
	_, err = cli.Get(ctxT(t, 10*time.Second), key, clientv3.WithRev(first.Header.Revision))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("Get at compacted revision: %v, want ErrCompacted", err)
	}
}

func TestProxyCutRestore(t *testing.T) {
	p, err := srv.NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cli, err := p.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	key := etcdtest.Prefix(t) + "/k"
	if _, err := cli.Put(ctxT(t, 10*time.Second), key, "v"); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if _, err := cli.Get(ctxT(t, 300*time.Millisecond), key); err == nil {
		t.Fatal("Get through a cut proxy succeeded")
	}
	if _, err := srv.Client().Get(ctxT(t, 10*time.Second), key); err != nil {
		t.Fatalf("direct client while the proxy is cut: %v", err)
	}
	p.Restore()
	if _, err := cli.Get(ctxT(t, 20*time.Second), key); err != nil {
		t.Fatalf("Get after Restore: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestKeyHelpers(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	p := etcdtest.Prefix(t)
	id, err := srv.Put(ctx, p+"/a", "1", 600)
	if err != nil || id == 0 {
		t.Fatalf("Put with a TTL: %x, %v", id, err)
	}
	if _, err := srv.Put(ctx, p+"/b", "2", 0); err != nil {
		t.Fatal(err)
	}
	if v, lease, ok, err := srv.Get(ctx, p+"/a"); v != "1" || lease != id || !ok || err != nil {
		t.Errorf("Get = %q %x %v %v", v, lease, ok, err)
	}
	if left, granted, err := srv.LeaseTTL(ctx, id); err != nil || granted != 600 || left < 590 {
		t.Errorf("LeaseTTL = %d of %d, %v", left, granted, err)
	}
	if keys, err := srv.Keys(ctx, p+"/"); err != nil || strings.Join(keys, " ") != p+"/a "+p+"/b" {
		t.Errorf("Keys = %q, %v", keys, err)
	}
	if err := srv.Delete(ctx, p+"/", true); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := srv.Get(ctx, p+"/b"); ok || err != nil {
		t.Errorf("key left after Delete: %v", err)
	}
}
