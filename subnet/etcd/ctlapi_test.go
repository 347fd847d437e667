package etcd_test

import (
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/internal/flagenv"
	"github.com/weft-net/weft/subnet/etcd"
)

// putKey writes value at key, attached to a new etcd lease of ttl seconds (none for 0), and returns
// the lease.
func putKey(t testing.TB, key, value string, ttl int64) int64 {
	t.Helper()
	id, err := srv.Put(testCtx(t), key, value, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestKeysAndLeaseTTL(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	n := newNode(t, srv.Client(), prefix, "", nil)
	id := putKey(t, prefix+"/subnets/10.244.2.0-24", `{"WeftNode":"n2"}`, 600)
	putKey(t, prefix+"/subnets/10.244.1.0-24&fc00::-64", `x`, 0)
	putKey(t, prefix+"/subnets/garbage", `y`, 0)
	keys, rev, err := n.m.Keys(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, strings.TrimPrefix(k.Key, prefix)+" "+k.Subnet.String()+" "+string(k.Value))
	}
	want := "/subnets/10.244.1.0-24&fc00::-64 10.244.1.0/24 x|/subnets/10.244.2.0-24 10.244.2.0/24 {\"WeftNode\":\"n2\"}|/subnets/garbage invalid Prefix y"
	if strings.Join(got, "|") != want || keys[1].EtcdLease != id || keys[2].KeyErr == nil {
		t.Errorf("Keys = %q (%+v)\nwant %q", got, keys, want)
	}
	putKey(t, prefix+"/subnets/10.244.3.0-24", `z`, 0)
	if old, r, err := n.m.Keys(testCtx(t), rev); err != nil || r != rev || len(old) != 3 {
		t.Errorf("Keys at revision %d: %d keys at %d, %v", rev, len(old), r, err)
	}
	left, granted, err := n.m.LeaseTTL(testCtx(t), id)
	if err != nil || granted != 600*time.Second || left <= 590*time.Second || left > granted {
		t.Errorf("LeaseTTL = %s of %s, %v", left, granted, err)
	}
	if _, err := srv.Client().Revoke(testCtx(t), clientv3.LeaseID(id)); err != nil {
		t.Fatal(err)
	}
	if left, granted, err := n.m.LeaseTTL(testCtx(t), id); err != nil || left != 0 || granted != 0 {
		t.Errorf("LeaseTTL of a revoked lease = %s of %s, %v", left, granted, err)
	}
}

func TestRawAndStoreConfig(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	n := newNode(t, srv.Client(), prefix, "", nil)
	ctx := testCtx(t)
	if _, _, err := n.m.RawConfig(ctx); !errors.Is(err, etcd.ErrNoConfig) {
		t.Fatalf("RawConfig without a config: %v", err)
	}
	if err := n.m.StoreConfig(ctx, []byte(`one`), 0); err != nil {
		t.Fatal(err)
	}
	if err := n.m.StoreConfig(ctx, []byte(`again`), 0); !errors.Is(err, etcd.ErrConfigChanged) {
		t.Errorf("create-only store over an existing config: %v", err)
	}
	raw, rev, err := n.m.RawConfig(ctx)
	if err != nil || string(raw) != "one" {
		t.Fatalf("RawConfig = %q, %v", raw, err)
	}
	putConfig(t, prefix, "someone else")
	if err := n.m.StoreConfig(ctx, []byte(`two`), rev); !errors.Is(err, etcd.ErrConfigChanged) {
		t.Errorf("store after another write: %v", err)
	}
	raw, rev, _ = n.m.RawConfig(ctx)
	if err := n.m.StoreConfig(ctx, []byte(`three`), rev); err != nil {
		t.Fatal(err)
	}
	if raw, _, _ = n.m.RawConfig(ctx); string(raw) != "three" {
		t.Errorf("config = %q, want three", raw)
	}
}

func TestFlannelCompatFlag(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		args   []string
		env    string
		want   bool
	}{
		{etcd.DefaultPrefix, nil, "", false},
		{etcd.FlannelPrefix, nil, "", true},
		{"/custom", []string{"-flannel-compat"}, "", true},
		{etcd.FlannelPrefix, []string{"-flannel-compat=false"}, "", false},
		{"/custom", nil, "true", true},
		{etcd.FlannelPrefix, nil, "false", false},
		{etcd.FlannelPrefix, []string{"-flannel-compat"}, "false", true},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := etcd.RegisterFlannelCompatFlag(fs)
		getenv := func(k string) string {
			if k == "WEFT_FLANNEL_COMPAT" {
				return tc.env
			}
			return ""
		}
		if err := flagenv.Parse(fs, tc.args, getenv); err != nil {
			t.Fatal(err)
		}
		if got := f.Resolve(tc.prefix); got != tc.want {
			t.Errorf("%s %q WEFT_FLANNEL_COMPAT=%q: %v, want %v", tc.prefix, tc.args, tc.env, got, tc.want)
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	etcd.RegisterFlannelCompatFlag(fs)
	if err := fs.Parse([]string{"-flannel-compat=maybe"}); err == nil {
		t.Error("-flannel-compat=maybe accepted")
	}
}

// TestWaitConfigUnknownFields: the config weftd reads may come from a newer weft; its unknown fields
// are logged and ignored.
func TestWaitConfigUnknownFields(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	var logs lockedBuffer
	n := newNode(t, srv.Client(), prefix, "n1", func(o *etcd.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	putConfig(t, prefix, `{"Network":"10.244.0.0/16","Shiny":true,"Backend":{"Type":"vxlan","VNI":3,"Turbo":1}}`)
	cfg, err := n.m.WaitConfig(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := renderConfig(cfg), "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=3 port=8472"; got != want {
		t.Errorf("WaitConfig = %s, want %s", got, want)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "fields=\"[Backend.Turbo Shiny]\"") {
		t.Errorf("no warning naming the unknown fields:\n%s", l)
	}
	if _, err := n.m.Config(testCtx(t)); err == nil || !strings.Contains(err.Error(), "unknown field Shiny") {
		t.Errorf("strict Config: %v, want an error naming Shiny", err)
	}
}
