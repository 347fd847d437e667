package admin

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
	"github.com/weft-net/weft/subnet"
)

// entry builds a key entry with a parsed lease.
func entry(t *testing.T, sn, node, ip, mac string, vni int) Entry {
	p := netip.MustParsePrefix(sn)
	a := ctltest.WeftAttrs(t, node, ip, mac)
	if node == "" {
		a = ctltest.FlannelAttrs(t, ip, mac)
	}
	a.VNI = vni
	return Entry{Key: "/p/subnets/" + subnet.SubnetKey(p), Subnet: p, Lease: &subnet.Lease{Subnet: p, Attrs: a}}
}

func TestCheckKeys(t *testing.T) {
	cfg, err := subnet.ParseConfig([]byte(ctltest.Config))
	if err != nil {
		t.Fatal(err)
	}
	n1 := entry(t, "10.244.1.0/24", "n1", "198.51.100.1", "02:00:00:00:00:01", 1)
	n2 := entry(t, "10.244.2.0/24", "n2", "198.51.100.2", "02:00:00:00:00:02", 1)
	pending := Entry{Key: "/p/subnets/10.244.5.0-24", Subnet: netip.MustParsePrefix("10.244.5.0/24"), Node: "n1",
		PublicIP: netip.MustParseAddr("198.51.100.1"), Pending: true}
	dual := n1
	dual.Key += "&fc00::-64"
	for _, tc := range []struct {
		name    string
		cfg     *subnet.Config
		cfgErr  error
		entries []Entry
		want    []string // kind subnet
	}{
		{"healthy", cfg, nil, []Entry{n1, n2}, nil},
		{"no config", nil, errors.New("no network config"), []Entry{n1}, []string{"config "}},
		{"malformed", cfg, nil, []Entry{n1, {Key: "/p/subnets/x", Err: subnet.ErrInvalidLease}}, []string{"malformed "}},
		{"duplicate subnet", cfg, nil, []Entry{n1, dual}, []string{
			"duplicate-node 10.244.1.0/24", "duplicate-node 10.244.1.0/24", "duplicate-subnet 10.244.1.0/24"}},
		{"overlap", cfg, nil, []Entry{n1, entry(t, "10.244.0.0/23", "n3", "198.51.100.3", "02:00:00:00:00:03", 1)}, []string{
			"outside-config 10.244.0.0/23", "overlap 10.244.1.0/24"}},
		{"outside the network", cfg, nil, []Entry{entry(t, "10.245.1.0/24", "n3", "198.51.100.3", "02:00:00:00:00:03", 1)}, []string{
			"outside-config 10.245.1.0/24"}},
		{"vni", cfg, nil, []Entry{n1, entry(t, "10.244.3.0/24", "n3", "198.51.100.3", "02:00:00:00:00:03", 7)}, []string{
			"vni-mismatch 10.244.3.0/24"}},
		{"node with a reservation and a lease", cfg, nil, []Entry{n1, pending}, []string{
			"duplicate-node 10.244.1.0/24", "duplicate-node 10.244.5.0/24"}},
		{"shared MAC", cfg, nil, []Entry{n1, entry(t, "10.244.3.0/24", "n3", "198.51.100.3", "02:00:00:00:00:01", 1)}, []string{
			"duplicate-mac 10.244.1.0/24", "duplicate-mac 10.244.3.0/24"}},
		{"one MAC, one address", cfg, nil, []Entry{entry(t, "10.244.3.0/24", "", "198.51.100.3", "02:00:00:00:00:03", 1),
			entry(t, "10.244.4.0/24", "", "198.51.100.3", "02:00:00:00:00:03", 1)}, []string{
			"duplicate-ip 10.244.3.0/24", "duplicate-ip 10.244.4.0/24"}},
		{"shared address", cfg, nil, []Entry{n1, entry(t, "10.244.3.0/24", "n3", "198.51.100.1", "02:00:00:00:00:03", 1)}, []string{
			"duplicate-ip 10.244.1.0/24", "duplicate-ip 10.244.3.0/24"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range checkKeys(tc.cfg, tc.cfgErr, tc.entries) {
				got = append(got, p.Kind+" "+p.Subnet)
				if p.Detail == "" {
					t.Errorf("%s: no detail", p.Kind)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestLeasesCheck(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	seed(t, prefix)
	ctltest.PutLease(t, srv, prefix, "10.244.1.0/25", ctltest.WeftAttrs(t, "node6", "198.51.100.6", "02:00:00:00:00:06"), 0)
	ctltest.PutLease(t, srv, prefix, "10.244.7.0/24", ctltest.WeftAttrs(t, "node7", "198.51.100.7", "02:00:00:00:00:02"), 0)
	ctltest.PutLease(t, srv, prefix, "10.9.0.0/24", ctltest.WeftAttrs(t, "node8", "198.51.100.8", "02:00:00:00:00:08"), 0)
	dual, err := ctltest.FlannelAttrs(t, "198.51.100.10", "02:00:00:00:00:10").MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ctltest.Put(t, srv, prefix+"/subnets/10.244.4.0-24&fc00::-64", string(dual), 0)
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			r := ctl(t, nil, prefix, "leases", "check", "-o", format)
			if !errors.Is(r.Err, cli.ErrProblems) {
				t.Fatalf("err = %v, want cli.ErrProblems\n%s", r.Err, r.Stderr)
			}
			ctltest.Golden(t, "leases-check-"+format, r.Stdout)
		})
	}
	clean := ctltest.Prefix(t, srv) + "/clean"
	ctltest.Put(t, srv, clean+"/config", ctltest.Config, 0)
	for i := range 3 {
		ctltest.PutLease(t, srv, clean, fmt.Sprintf("10.244.%d.0/24", i+1), ctltest.WeftAttrs(t, fmt.Sprint("node", i), fmt.Sprint("198.51.100.", i+1), fmt.Sprint("02:00:00:00:00:0", i+1)), 0)
	}
	r := ctl(t, nil, clean, "leases", "check")
	if r.Err != nil || r.Stdout != "3 subnet keys under "+clean+"/subnets/: no problems.\n" {
		t.Errorf("err %v, output:\n%s", r.Err, r.Stdout)
	}
	r = ctl(t, nil, clean+"/none", "leases", "check")
	if !errors.Is(r.Err, cli.ErrProblems) || !strings.Contains(r.Stdout, "no network config") {
		t.Errorf("without a config: err %v, output:\n%s", r.Err, r.Stdout)
	}
}
