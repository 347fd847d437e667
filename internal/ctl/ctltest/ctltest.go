// Package ctltest holds what the tests of weftctl's packages share: running a command and capturing
// what it prints, golden files, lease values, and seeding a test etcd server (internal/etcdtest).
package ctltest

import (
	"bytes"
	"context"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// Timeout bounds each test's work; generous because the machine is shared.
const Timeout = 60 * time.Second

// Ctx is a context that ends with the test or after Timeout.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Result is what one weftctl run printed and returned.
type Result struct {
	Stdout, Stderr string
	Err            error
}

// RunFunc runs weftctl's commands (ctl.Run, or a package's commands through cli.Dispatch).
type RunFunc func(ctx context.Context, env *cli.Env, args []string) error

// Run runs args with run and an environment holding only the variables in vars. base, when not
// nil, supplies Stdin, Now and the doctor's kernel access.
func Run(t testing.TB, run RunFunc, base *cli.Env, vars map[string]string, args ...string) Result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{}
	if base != nil {
		*env = *base
	}
	env.Stdout, env.Stderr = &out, &errb
	env.Getenv = func(k string) string { return vars[k] }
	err := run(Ctx(t), env, args)
	return Result{out.String(), errb.String(), err}
}

// EtcdArgs are the connection flags for srv and prefix.
func EtcdArgs(srv *etcdtest.Server, prefix string) []string {
	return []string{"-etcd-endpoints", srv.Endpoints()[0], "-etcd-prefix", prefix}
}

// Golden compares got with testdata/name.golden, or rewrites the file with -update.
func Golden(t testing.TB, name, got string) {
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

// Normalize replaces the volatile fields of an output with placeholders.
func Normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// Acquired is the AcquiredAt of the leases the tests write.
var Acquired = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// FixtureNow is the clock of the tests that show the /debug/peers fixtures: their probes ran at
// 03:04:00.
var FixtureNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// MAC parses s.
func MAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WeftAttrs are the attributes weftd writes for a node.
func WeftAttrs(t testing.TB, node, ip, mac string) subnet.LeaseAttrs {
	return subnet.LeaseAttrs{
		PublicIP: netip.MustParseAddr(ip), BackendType: subnet.BackendVXLAN, VNI: 1, VtepMAC: MAC(t, mac),
		Format: subnet.LeaseFormat, NodeName: node, GossipAddr: netip.AddrPortFrom(netip.MustParseAddr(ip), 7946),
		AttrVersion: Acquired.UnixNano(), AcquiredAt: Acquired,
	}
}

// FlannelAttrs are the attributes flannel writes for a node: no weft fields.
func FlannelAttrs(t testing.TB, ip, mac string) subnet.LeaseAttrs {
	return subnet.LeaseAttrs{PublicIP: netip.MustParseAddr(ip), BackendType: subnet.BackendVXLAN, VNI: 1, VtepMAC: MAC(t, mac)}
}

// Config is a minimal network config.
const Config = `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`

// Prefix is a key prefix of the test's own, derived from its name so that golden files see the
// same keys on every run; the test's keys are deleted when it ends.
func Prefix(t testing.TB, srv *etcdtest.Server) string {
	p := "/ctltest/" + strings.NewReplacer(" ", "_", "#", "_").Replace(t.Name())
	CleanPrefix(t, srv, p)
	return p
}

// CleanPrefix deletes everything under p now and when the test ends.
func CleanPrefix(t testing.TB, srv *etcdtest.Server, p string) {
	del := func() {
		if err := srv.Delete(context.Background(), p+"/", true); err != nil {
			t.Errorf("deleting %s: %v", p, err)
		}
	}
	del()
	t.Cleanup(del)
}

// Put writes value at key, attached to a new etcd lease with ttl seconds (none when ttl is 0), and
// returns the etcd lease ID.
func Put(t testing.TB, srv *etcdtest.Server, key, value string, ttl int64) int64 {
	t.Helper()
	id, err := srv.Put(Ctx(t), key, value, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// PutLease writes attrs as the value of the key of sn under prefix.
func PutLease(t testing.TB, srv *etcdtest.Server, prefix, sn string, attrs subnet.LeaseAttrs, ttl int64) int64 {
	t.Helper()
	val, err := attrs.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return Put(t, srv, weftetcd.SubnetKey(prefix, netip.MustParsePrefix(sn)), string(val), ttl)
}

// Get returns the value of key and its etcd lease, and whether it exists.
func Get(t testing.TB, srv *etcdtest.Server, key string) (string, int64, bool) {
	t.Helper()
	v, lease, ok, err := srv.Get(Ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	return v, lease, ok
}

// ClosedPort returns an http URL of a loopback port nothing listens on.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// Fixture is the path of a /debug/peers fixture in ctltest's testdata.
func Fixture(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}

// ServeWeftd serves the health endpoints weftd serves, with /debug/peers from the fixture and
// /readyz answering readyCode with readyBody, and returns its address.
func ServeWeftd(t testing.TB, fixture string, readyCode int, readyBody string) string {
	t.Helper()
	body, err := os.ReadFile(Fixture(fixture))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/peers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(readyCode)
		_, _ = w.Write([]byte(readyBody + "\n"))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}
