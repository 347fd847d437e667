package ctl

import (
	"bytes"
	"context"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
)

// srv is the etcd server the package's tests share; each test works under its own prefix.
var srv *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, &srv) }

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// testTimeout bounds each test's work; generous because the machine is shared.
const testTimeout = 60 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testPrefix is a key prefix of the test's own, derived from its name so that golden files see the
// same keys on every run; the test's keys are deleted when it ends.
func testPrefix(t testing.TB) string {
	p := "/ctltest/" + strings.NewReplacer(" ", "_", "#", "_").Replace(t.Name())
	cleanPrefix(t, srv.Client(), p)
	return p
}

// cleanPrefix deletes everything under p now and when the test ends.
func cleanPrefix(t testing.TB, cli *clientv3.Client, p string) {
	del := func() {
		if _, err := cli.Delete(context.Background(), p+"/", clientv3.WithPrefix()); err != nil {
			t.Errorf("deleting %s: %v", p, err)
		}
	}
	del()
	t.Cleanup(del)
}

// result is what one weftctl run printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

// runCtl runs weftctl with args and an environment holding only the variables in vars. base, when
// not nil, supplies Stdin, Now and the doctor's kernel access.
func runCtl(t testing.TB, base *Env, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{}
	if base != nil {
		*env = *base
	}
	env.Stdout, env.Stderr = &out, &errb
	env.Getenv = func(k string) string { return vars[k] }
	err := Run(testCtx(t), env, args)
	return result{out.String(), errb.String(), err}
}

// etcdArgs are the connection flags for the test server and prefix.
func etcdArgs(prefix string) []string {
	return []string{"-etcd-endpoints", srv.Endpoints()[0], "-etcd-prefix", prefix}
}

// ctl runs weftctl against the test server under prefix: args, then the connection flags.
func ctl(t testing.TB, base *Env, prefix string, args ...string) result {
	t.Helper()
	return runCtl(t, base, nil, append(args, etcdArgs(prefix)...)...)
}

// golden compares got with testdata/name.golden, or rewrites the file with -update.
func golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// volatile are the fields whose values depend on the etcd server's history or the clock: revisions,
// etcd lease IDs and expiry times.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`"(revision|modRevision)": \d+`), `"$1": "<rev>"`},
	{regexp.MustCompile(`(?m)^([ -]*)(revision|modRevision): \d+$`), `$1$2: <rev>`},
	{regexp.MustCompile(`"(etcdLease|expires)": "[^"]*"`), `"$1": "<$1>"`},
	{regexp.MustCompile(`(?m)^([ -]*)(etcdLease|expires): .+$`), `$1$2: <$2>`},
	{regexp.MustCompile(`(?m)^(Revision|Etcd lease):(\s+)\S+$`), `$1:$2<volatile>`},
	// The ETCD-LEASE column of wide tables, the last one.
	{regexp.MustCompile(`(?m)  [0-9a-f]{6,16}$`), `  <etcd-lease>`},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// acquired is the AcquiredAt of the leases the tests write.
var acquired = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustMAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// weftAttrs are the attributes weftd writes for a node.
func weftAttrs(t testing.TB, node, ip, mac string) subnet.LeaseAttrs {
	return subnet.LeaseAttrs{
		PublicIP: netip.MustParseAddr(ip), BackendType: subnet.BackendVXLAN, VNI: 1, VtepMAC: mustMAC(t, mac),
		Format: subnet.LeaseFormat, NodeName: node, GossipAddr: netip.AddrPortFrom(netip.MustParseAddr(ip), 7946),
		AttrVersion: acquired.UnixNano(), AcquiredAt: acquired,
	}
}

// flannelAttrs are the attributes flannel writes for a node: no weft fields.
func flannelAttrs(t testing.TB, ip, mac string) subnet.LeaseAttrs {
	return subnet.LeaseAttrs{PublicIP: netip.MustParseAddr(ip), BackendType: subnet.BackendVXLAN, VNI: 1, VtepMAC: mustMAC(t, mac)}
}

// put writes value at key, attached to a new etcd lease with ttl seconds (none when ttl is 0), and
// returns the etcd lease ID.
func put(t testing.TB, cli *clientv3.Client, key, value string, ttl int64) clientv3.LeaseID {
	t.Helper()
	ctx := testCtx(t)
	var opts []clientv3.OpOption
	var id clientv3.LeaseID
	if ttl > 0 {
		g, err := cli.Grant(ctx, ttl)
		if err != nil {
			t.Fatal(err)
		}
		id = g.ID
		opts = append(opts, clientv3.WithLease(id))
	}
	if _, err := cli.Put(ctx, key, value, opts...); err != nil {
		t.Fatal(err)
	}
	return id
}

// putLease writes attrs as the value of the key of sn under prefix.
func putLease(t testing.TB, cli *clientv3.Client, prefix, sn string, attrs subnet.LeaseAttrs, ttl int64) clientv3.LeaseID {
	t.Helper()
	val, err := attrs.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return put(t, cli, prefix+"/subnets/"+subnet.SubnetKey(netip.MustParsePrefix(sn)), string(val), ttl)
}

const testConfig = `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`

// get returns the value of key, and whether it exists.
func get(t testing.TB, key string) (string, int64, bool) {
	t.Helper()
	resp, err := srv.Client().Get(testCtx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, true
}
