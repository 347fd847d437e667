package admin

import (
	"errors"
	"strings"
	"testing"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
)

func TestLeasesImport(t *testing.T) {
	base := ctltest.Prefix(t, srv)
	from, to := base+"/coreos.com/network", base+"/weft/network"
	ctltest.Put(t, srv, from+"/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":1}}`, 0)
	ctltest.PutLease(t, srv, from, "10.244.1.0/24", ctltest.FlannelAttrs(t, "198.51.100.1", "02:00:00:00:00:01"), 7200)
	ctltest.PutLease(t, srv, from, "10.244.2.0/24", ctltest.WeftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 0)
	ctltest.Put(t, srv, from+"/subnets/10.244.3.0-24&fc00::-64", `{"PublicIP":"198.51.100.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:03"}}`, 3600)
	ctltest.Put(t, srv, from+"/subnets/10.244.4.0-24", `{"PublicIP":""}`, 3600)
	ctltest.PutLease(t, srv, from, "10.245.0.0/24", ctltest.FlannelAttrs(t, "198.51.100.5", "02:00:00:00:00:05"), 3600)
	ctltest.PutLease(t, srv, from, "10.244.6.0/24", ctltest.FlannelAttrs(t, "198.51.100.6", "02:00:00:00:00:06"), 3600)
	ctltest.Put(t, srv, to+"/subnets/10.244.6.0-24", "already here", 0)
	srcValue, _, _ := ctltest.Get(t, srv, from+"/subnets/10.244.1.0-24")

	dump := func() string {
		keys, err := srv.Keys(ctltest.Ctx(t), to+"/")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k + "\n")
		}
		return b.String()
	}
	before := dump()
	r := ctl(t, nil, to, "leases", "import", "-from", from)
	if r.Err != nil {
		t.Fatalf("%v\n%s", r.Err, r.Stderr)
	}
	ctltest.Golden(t, "leases-import-dry-run", r.Stdout)
	if after := dump(); after != before {
		t.Errorf("the dry run wrote:\n%s", after)
	}

	r = ctl(t, nil, to, "leases", "import", "-from", from, "-apply")
	if r.Err != nil {
		t.Fatalf("%v\n%s", r.Err, r.Stderr)
	}
	ctltest.Golden(t, "leases-import-apply", r.Stdout)
	ctltest.Golden(t, "leases-import-keys", dump())
	val, lease, _ := ctltest.Get(t, srv, to+"/subnets/10.244.1.0-24")
	left, granted, err := srv.LeaseTTL(ctltest.Ctx(t), lease)
	if val != srcValue || err != nil || granted != 7200 || left < 7000 {
		t.Errorf("copy of 10.244.1.0/24: value %s (want %s), TTL %d of %d (%v)", val, srcValue, left, granted, err)
	}
	if _, lease, _ := ctltest.Get(t, srv, to+"/subnets/10.244.2.0-24"); lease != 0 {
		t.Errorf("the copy of a reservation has etcd lease %x", lease)
	}
	if v, _, _ := ctltest.Get(t, srv, to+"/subnets/10.244.6.0-24"); v != "already here" {
		t.Errorf("existing key overwritten: %s", v)
	}
	// Copied keys are weft's leases: list reads them.
	if r := ctl(t, nil, to, "leases", "list"); r.Err != nil || !strings.Contains(r.Stdout, "10.244.3.0/24") {
		t.Errorf("list after import: %v\n%s", r.Err, r.Stdout)
	}

	r = ctl(t, nil, to, "leases", "import", "-from", from, "-apply", "-o", "json")
	if r.Err != nil || strings.Contains(r.Stdout, `"copied"`) {
		t.Errorf("a second import copied again: %v\n%s", r.Err, r.Stdout)
	}

	for _, tc := range []struct {
		name string
		args []string
		err  error
	}{
		{"no source", []string{}, cli.ErrUsage},
		{"same prefix", []string{"-from", to}, cli.ErrUsage},
		{"bad source", []string{"-from", "relative"}, cli.ErrUsage},
		{"empty source", []string{"-from", base + "/nothing"}, cli.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, nil, to, append([]string{"leases", "import"}, tc.args...)...)
			if !errors.Is(r.Err, tc.err) {
				t.Errorf("err = %v, want %v", r.Err, tc.err)
			}
		})
	}
	ctltest.Put(t, srv, base+"/bad/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`, 0)
	if r := ctl(t, nil, to, "leases", "import", "-from", base+"/bad"); !errors.Is(r.Err, cli.ErrRefused) || !strings.Contains(r.Err.Error(), "Backend.Type") {
		t.Errorf("invalid source config: err = %v", r.Err)
	}
}
