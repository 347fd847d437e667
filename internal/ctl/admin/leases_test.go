package admin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
	"github.com/weft-net/weft/internal/etcdclient"
	"github.com/weft-net/weft/internal/etcdtest"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// seed writes a config and one key of every kind under prefix: a weft lease, a taken reservation, a
// reservation not taken yet (through weftctl leases reserve), a flannel lease, a malformed value and
// a key that names no subnet.
func seed(t *testing.T, prefix string) {
	t.Helper()
	ctltest.Put(t, srv, prefix+"/config", ctltest.Config, 0)
	ctltest.PutLease(t, srv, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node1", "198.51.100.1", "02:00:00:00:00:01"), 3600)
	ctltest.PutLease(t, srv, prefix, "10.244.2.0/24", ctltest.WeftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 0)
	if r := ctl(t, nil, prefix, "leases", "reserve", "10.244.3.0/24", "-node", "node3", "-public-ip", "198.51.100.3"); r.Err != nil {
		t.Fatalf("reserve: %v\n%s", r.Err, r.Stderr)
	}
	ctltest.PutLease(t, srv, prefix, "10.244.4.0/24", ctltest.FlannelAttrs(t, "198.51.100.4", "02:00:00:00:00:04"), 3600)
	ctltest.Put(t, srv, prefix+"/subnets/10.244.9.0-24", `{"PublicIP":"not-an-ip","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:09"}}`, 0)
	ctltest.Put(t, srv, prefix+"/subnets/garbage", `x`, 0)
}

func TestLeasesList(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	seed(t, prefix)
	for _, tc := range []struct{ name, format string }{
		{"leases-list", "table"},
		{"leases-list-wide", "wide"},
		{"leases-list-json", "json"},
		{"leases-list-yaml", "yaml"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			r := ctl(t, nil, prefix, "leases", "list", "-o", tc.format)
			if r.Err != nil {
				t.Fatalf("%v\n%s", r.Err, r.Stderr)
			}
			ctltest.Golden(t, tc.name, ctltest.Normalize(r.Stdout))
		})
	}
}

func TestLeasesListEmpty(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	r := ctl(t, nil, prefix, "leases", "list")
	if r.Err != nil || r.Stdout != "SUBNET  NODE  PUBLIC-IP  VTEP-MAC  EXPIRES  RESERVED\n(no subnet keys)\n" {
		t.Errorf("err %v, output:\n%s", r.Err, r.Stdout)
	}
	r = ctl(t, nil, prefix, "leases", "list", "-o", "json")
	if r.Err != nil || !strings.Contains(r.Stdout, `"leases": []`) {
		t.Errorf("err %v, output:\n%s", r.Err, r.Stdout)
	}
}

func TestLeasesGet(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	seed(t, prefix)
	for _, tc := range []struct {
		golden string
		args   []string
		err    error
	}{
		{"leases-get-lease", []string{"10.244.1.0/24"}, nil},
		{"leases-get-reservation", []string{"10.244.2.0-24", "-o", "json"}, nil},
		{"leases-get-pending", []string{prefix + "/subnets/10.244.3.0-24"}, nil},
		{"leases-get-flannel", []string{"10.244.4.0/24", "-o", "yaml"}, nil},
		{"leases-get-malformed", []string{"10.244.9.0/24"}, nil},
		{"", []string{"10.244.5.0/24"}, cli.ErrNotFound},
		{"", []string{"10.244.5.1/24"}, cli.ErrUsage},
		{"", []string{"fc00::/64"}, cli.ErrUsage},
		{"", []string{"banana"}, cli.ErrUsage},
		{"", []string{}, cli.ErrUsage},
		{"", []string{"10.244.1.0/24", "10.244.2.0/24"}, cli.ErrUsage},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := ctl(t, nil, prefix, append([]string{"leases", "get"}, tc.args...)...)
			if !errors.Is(r.Err, tc.err) || (tc.err == nil) != (r.Err == nil) {
				t.Fatalf("err = %v, want %v\n%s", r.Err, tc.err, r.Stderr)
			}
			if tc.golden != "" {
				ctltest.Golden(t, tc.golden, ctltest.Normalize(r.Stdout))
			}
		})
	}
}

func TestLeasesReserve(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	seed(t, prefix)
	for _, tc := range []struct {
		name string
		args []string
		err  error
		out  string
	}{
		{"again", []string{"10.244.3.0/24", "-node", "node3", "-public-ip", "198.51.100.3"}, nil, "already reserved"},
		{"lease to reservation", []string{"10.244.1.0/24", "-node", "node1"}, nil, "Turned node \"node1\"'s lease of 10.244.1.0/24 into a reservation"},
		{"held by another", []string{"10.244.2.0/24", "-node", "node5", "-public-ip", "198.51.100.5"}, weftetcd.ErrSubnetInUse, ""},
		{"outside the network", []string{"10.245.0.0/24", "-node", "node5", "-public-ip", "198.51.100.5"}, weftetcd.ErrInvalidSubnet, ""},
		{"wrong length", []string{"10.244.8.0/25", "-node", "node5", "-public-ip", "198.51.100.5"}, weftetcd.ErrInvalidSubnet, ""},
		{"no node", []string{"10.244.8.0/24", "-public-ip", "198.51.100.5"}, cli.ErrUsage, ""},
		{"no address", []string{"10.244.8.0/24", "-node", "node5"}, cli.ErrUsage, ""},
		{"bad address", []string{"10.244.8.0/24", "-node", "node5", "-public-ip", "fc00::1"}, cli.ErrUsage, ""},
		{"new", []string{"10.244.8.0/24", "--node", "node5", "--public-ip", "198.51.100.5"}, nil, "Reserved 10.244.8.0/24 for node \"node5\" (198.51.100.5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, nil, prefix, append([]string{"leases", "reserve"}, tc.args...)...)
			if !errors.Is(r.Err, tc.err) || (tc.err == nil) != (r.Err == nil) {
				t.Fatalf("err = %v, want %v\n%s", r.Err, tc.err, r.Stderr)
			}
			if !strings.Contains(r.Stdout, tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, r.Stdout)
			}
		})
	}
	// node1's key kept its value and lost its etcd lease; node5's is a reservation not taken yet.
	val, lease, ok := ctltest.Get(t, srv, prefix+"/subnets/10.244.1.0-24")
	if !ok || lease != 0 || !strings.Contains(val, `"VtepMAC":"02:00:00:00:00:01"`) {
		t.Errorf("10.244.1.0/24: lease %x, value %s", lease, val)
	}
	r := ctl(t, nil, prefix, "leases", "get", "10.244.8.0/24")
	if r.Err != nil || !strings.Contains(r.Stdout, "yes (not taken yet)") || !strings.Contains(r.Stdout, "node5") {
		t.Errorf("get after reserve: %v\n%s", r.Err, r.Stdout)
	}
}

func TestLeasesReclaim(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	seed(t, prefix)
	key := prefix + "/subnets/10.244.1.0-24"
	_, lease, _ := ctltest.Get(t, srv, key)
	for _, tc := range []struct {
		name  string
		stdin *strings.Reader
		vars  map[string]string
		args  []string
		err   error
		gone  bool
	}{
		{"no", strings.NewReader("n\n"), nil, nil, cli.ErrAborted, false},
		{"empty answer", strings.NewReader("\n"), nil, nil, cli.ErrAborted, false},
		{"no input", nil, nil, nil, cli.ErrAborted, false},
		{"closed input", strings.NewReader(""), nil, nil, cli.ErrAborted, false},
		{"yes from the environment is ignored", nil, map[string]string{"WEFT_YES": "true"}, nil, cli.ErrAborted, false},
		{"yes", strings.NewReader("yes\n"), nil, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &cli.Env{}
			if tc.stdin != nil {
				env.Stdin = tc.stdin
			}
			r := runCtl(t, env, tc.vars, append([]string{"leases", "reclaim", "10.244.1.0/24"}, ctltest.EtcdArgs(srv, prefix)...)...)
			if !errors.Is(r.Err, tc.err) || (tc.err == nil) != (r.Err == nil) {
				t.Fatalf("err = %v, want %v\n%s%s", r.Err, tc.err, r.Stdout, r.Stderr)
			}
			if !strings.Contains(r.Stdout, `10.244.1.0/24 is leased to node "node1" (198.51.100.1)`) || !strings.Contains(r.Stdout, "Reclaim 10.244.1.0/24? [y/N]") {
				t.Errorf("stdout:\n%s", r.Stdout)
			}
			if !strings.Contains(r.Stderr, "weftd on that node looks alive") {
				t.Errorf("no warning that the holder looks alive:\n%s", r.Stderr)
			}
			if _, _, ok := ctltest.Get(t, srv, key); ok == tc.gone {
				t.Errorf("key exists: %v, want %v", ok, !tc.gone)
			}
		})
	}
	left, _, err := srv.LeaseTTL(ctltest.Ctx(t), lease)
	if err != nil || left > 0 {
		t.Errorf("etcd lease %x after reclaim: TTL %d, err %v; want revoked", lease, left, err)
	}
	for _, tc := range []struct {
		name, subnet, out, warn string
	}{
		{"free", "10.244.1.0/24", "10.244.1.0/24 is free: nothing to reclaim.", ""},
		{"reservation", "10.244.2.0/24", `10.244.2.0/24 is reserved for node "node2" (198.51.100.2)`, "acquires a subnet again at once"},
		{"malformed", "10.244.9.0/24", "Reclaimed 10.244.9.0/24", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, nil, prefix, "leases", "reclaim", tc.subnet, "-yes")
			if r.Err != nil || !strings.Contains(r.Stdout, tc.out) || !strings.Contains(r.Stderr, tc.warn) {
				t.Errorf("err %v\nstdout:\n%s\nstderr:\n%s", r.Err, r.Stdout, r.Stderr)
			}
		})
	}
}

// TestLeasesReclaimQuiet checks that an etcd lease not renewed for more than a third of its TTL (and
// a tenth of slack) — a node that stopped — draws no warning.
func TestLeasesReclaimQuiet(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	ctltest.Put(t, srv, prefix+"/config", ctltest.Config, 0)
	ctltest.PutLease(t, srv, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node1", "198.51.100.1", "02:00:00:00:00:01"), 5)
	deadline := time.Now().Add(ctltest.Timeout)
	for {
		_, lease, _ := ctltest.Get(t, srv, prefix+"/subnets/10.244.1.0-24")
		left, _, err := srv.LeaseTTL(ctltest.Ctx(t), lease)
		if err != nil {
			t.Fatal(err)
		}
		if left <= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := ctl(t, nil, prefix, "leases", "reclaim", "10.244.1.0/24", "-yes")
	if r.Err != nil || strings.Contains(r.Stderr, "looks alive") {
		t.Errorf("err %v, stderr:\n%s", r.Err, r.Stderr)
	}
}

func TestLeasesHistory(t *testing.T) {
	// A server of its own: revisions then start at 1 and the golden files can show them.
	s, err := etcdtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prefix := "/weft/network"
	args := func(extra ...string) []string {
		return append([]string{"leases", "history", "10.244.1.0/24", "-etcd-endpoints", s.Endpoints()[0]}, extra...)
	}
	ctltest.Put(t, s, prefix+"/config", ctltest.Config, 0)                                                                     // 2
	ctltest.PutLease(t, s, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node1", "198.51.100.1", "02:00:00:00:00:01"), 3600)  // 3
	ctltest.PutLease(t, s, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node1", "198.51.100.11", "02:00:00:00:00:01"), 3600) // 4
	if err := s.Delete(ctltest.Ctx(t), prefix+"/subnets/10.244.1.0-24", false); err != nil {                                   // 5
		t.Fatal(err)
	}
	ctltest.Put(t, s, prefix+"/subnets/10.244.1.0-24", `{"PublicIP":"198.51.100.7"}`, 0)                                   // 6
	ctltest.PutLease(t, s, prefix, "10.244.1.0/24", ctltest.FlannelAttrs(t, "198.51.100.8", "02:00:00:00:00:08"), 0)       // 7
	ctltest.PutLease(t, s, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 0) // 8
	for _, tc := range []struct{ golden, format string }{
		{"leases-history", "table"},
		{"leases-history-wide", "wide"},
		{"leases-history-json", "json"},
	} {
		r := runCtl(t, nil, nil, args("-o", tc.format)...)
		if r.Err != nil {
			t.Fatalf("%v\n%s", r.Err, r.Stderr)
		}
		ctltest.Golden(t, tc.golden, ctltest.Normalize(r.Stdout))
	}
	ctltest.Put(t, s, prefix+"/config", ctltest.Config, 0)
	if _, err := s.Compact(ctltest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	ctltest.PutLease(t, s, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node3", "198.51.100.3", "02:00:00:00:00:03"), 0)
	r := runCtl(t, nil, nil, args()...)
	if r.Err != nil {
		t.Fatalf("%v\n%s", r.Err, r.Stderr)
	}
	ctltest.Golden(t, "leases-history-compacted", r.Stdout)
	r = runCtl(t, nil, nil, "leases", "history", "10.244.2.0/24", "-etcd-endpoints", s.Endpoints()[0])
	if r.Err != nil || !strings.Contains(r.Stdout, "No writes") {
		t.Errorf("history of a subnet never held: %v\n%s", r.Err, r.Stdout)
	}
}

func TestUnreachable(t *testing.T) {
	ep := ctltest.ClosedPort(t)
	for _, args := range [][]string{
		{"leases", "list"}, {"leases", "check"}, {"config", "get"}, {"leases", "history", "10.244.1.0/24"},
	} {
		r := runCtl(t, nil, nil, append(args, "-etcd-endpoints", ep, "-etcd-timeout", "1s")...)
		if !errors.Is(r.Err, etcdclient.ErrUnreachable) || !strings.Contains(r.Err.Error(), ep+": dial tcp") ||
			!strings.Contains(r.Err.Error(), "connection refused") {
			t.Errorf("%v: err = %v; want one naming %s and the refused connection", args, r.Err, ep)
		}
	}
}
