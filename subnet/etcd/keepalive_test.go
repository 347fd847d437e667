package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

// running is a KeepAlive in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func startKeepAlive(t *testing.T, m *etcd.Manager, l *subnet.Lease) *running {
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.KeepAlive(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait returns KeepAlive's result, failing the test if it does not come within d.
func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("KeepAlive still running after %s", d)
		return nil
	}
}

// TestKeepAliveRenews checks that KeepAlive keeps a short lease past its TTL, returns nil when
// stopped, and that the lease then expires.
func TestKeepAliveRenews(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	n := newNode(t, srv.Client(), prefix, "n1", func(o *etcd.Options) { o.TTL = 2 * time.Second })
	l, err := n.m.Acquire(testCtx(t), parseConfig(t, net16), attrsFor(1))
	if err != nil {
		t.Fatal(err)
	}
	r := startKeepAlive(t, n.m, l)
	key := leaseKey(prefix, l)
	for end := time.Now().Add(3 * 2 * time.Second); time.Now().Before(end); {
		if getKey(t, key) == nil {
			t.Fatalf("key %s expired while KeepAlive ran", key)
		}
		select {
		case err := <-r.done:
			t.Fatalf("KeepAlive returned %v while the lease was held", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !n.m.EtcdUp() {
		t.Error("EtcdUp() = false while etcd answers")
	}
	r.cancel()
	if err := r.wait(t, 10*time.Second); err != nil {
		t.Fatalf("KeepAlive after cancel: %v, want nil", err)
	}
	waitFor(t, "the lease to expire once no longer renewed", 20*time.Second, func() bool { return getKey(t, key) == nil })
}

// TestKeepAliveLost checks every way of losing a lease is reported as ErrLeaseLost.
func TestKeepAliveLost(t *testing.T) {
	tests := []struct {
		name    string
		reserve bool
		// lose takes the lease away, from the admin's side.
		lose func(t *testing.T, prefix string, n *node, l *subnet.Lease)
		want string
	}{
		{
			name: "admin deletes the key",
			lose: func(t *testing.T, prefix string, _ *node, l *subnet.Lease) {
				if _, err := srv.Client().Delete(testCtx(t), leaseKey(prefix, l)); err != nil {
					t.Fatal(err)
				}
			},
			want: "was deleted",
		},
		{
			name: "admin reclaims the subnet",
			lose: func(t *testing.T, prefix string, _ *node, l *subnet.Lease) {
				admin := newNode(t, srv.Client(), prefix, "", nil)
				if err := admin.m.Reclaim(testCtx(t), l.Subnet); err != nil {
					t.Fatal(err)
				}
			},
			want: "",
		},
		{
			name: "etcd lease revoked",
			lose: func(t *testing.T, _ string, _ *node, l *subnet.Lease) {
				if _, err := srv.Client().Revoke(testCtx(t), clientv3.LeaseID(l.EtcdLease)); err != nil {
					t.Fatal(err)
				}
			},
			want: "",
		},
		{
			name: "another node overwrites the key",
			lose: func(t *testing.T, prefix string, _ *node, l *subnet.Lease) {
				if _, err := srv.Client().Put(testCtx(t), leaseKey(prefix, l), weftValue(t, 9, "thief")); err != nil {
					t.Fatal(err)
				}
			},
			want: `held by node "thief"`,
		},
		{
			name: "own attribute update, then deletion",
			lose: func(t *testing.T, prefix string, n *node, l *subnet.Lease) {
				a := attrsFor(1)
				a.VNI = 2
				if _, err := n.m.UpdateAttrs(testCtx(t), l, a); err != nil {
					t.Fatal(err)
				}
				if _, err := srv.Client().Delete(testCtx(t), leaseKey(prefix, l)); err != nil {
					t.Fatal(err)
				}
			},
			want: "was deleted",
		},
		{
			name:    "reservation deleted",
			reserve: true,
			lose: func(t *testing.T, prefix string, _ *node, l *subnet.Lease) {
				if _, err := srv.Client().Delete(testCtx(t), leaseKey(prefix, l)); err != nil {
					t.Fatal(err)
				}
			},
			want: "was deleted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			putConfig(t, prefix, net16)
			n := newNode(t, srv.Client(), prefix, "n1", nil)
			if tt.reserve {
				admin := newNode(t, srv.Client(), prefix, "", nil)
				if err := admin.m.Reserve(testCtx(t), mustPrefix("10.244.9.0/24"), subnet.LeaseAttrs{NodeName: "n1", PublicIP: mustAddr("192.0.2.2")}); err != nil {
					t.Fatal(err)
				}
			}
			l, err := n.m.Acquire(testCtx(t), parseConfig(t, net16), attrsFor(1))
			if err != nil {
				t.Fatal(err)
			}
			if l.Reserved() != tt.reserve {
				t.Fatalf("Reserved() = %t, want %t", l.Reserved(), tt.reserve)
			}
			r := startKeepAlive(t, n.m, l)
			tt.lose(t, prefix, n, l)
			err = r.wait(t, 20*time.Second)
			if !errors.Is(err, etcd.ErrLeaseLost) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("KeepAlive: %v, want ErrLeaseLost mentioning %q", err, tt.want)
			}
		})
	}
}

// TestKeepAliveExpiredDuringPartition cuts a node off etcd for longer than its TTL: once it can
// reach etcd again, KeepAlive reports the lease lost.
func TestKeepAliveExpiredDuringPartition(t *testing.T) {
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
	n := newNode(t, cli, prefix, "n1", func(o *etcd.Options) { o.TTL = 2 * time.Second })
	l, err := n.m.Acquire(testCtx(t), parseConfig(t, net16), attrsFor(1))
	if err != nil {
		t.Fatal(err)
	}
	r := startKeepAlive(t, n.m, l)
	p.Cut()
	waitFor(t, "EtcdUp to turn false", 20*time.Second, func() bool { return !n.m.EtcdUp() })
	waitFor(t, "the partitioned node's lease to expire", 20*time.Second, func() bool { return getKey(t, leaseKey(prefix, l)) == nil })
	p.Restore()
	if err := r.wait(t, 30*time.Second); !errors.Is(err, etcd.ErrLeaseLost) {
		t.Fatalf("KeepAlive: %v, want ErrLeaseLost", err)
	}
	if !n.m.EtcdUp() {
		t.Error("EtcdUp() = false after etcd became reachable again")
	}
}
