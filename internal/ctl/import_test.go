package ctl

import (
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestLeasesImport(t *testing.T) {
	base := testPrefix(t)
	from, to := base+"/coreos.com/network", base+"/weft/network"
	cli := srv.Client()
	put(t, cli, from+"/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":1}}`, 0)
	putLease(t, cli, from, "10.244.1.0/24", flannelAttrs(t, "198.51.100.1", "02:00:00:00:00:01"), 7200)
	putLease(t, cli, from, "10.244.2.0/24", weftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 0)
	put(t, cli, from+"/subnets/10.244.3.0-24&fc00::-64", `{"PublicIP":"198.51.100.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:03"}}`, 3600)
	put(t, cli, from+"/subnets/10.244.4.0-24", `{"PublicIP":""}`, 3600)
	putLease(t, cli, from, "10.245.0.0/24", flannelAttrs(t, "198.51.100.5", "02:00:00:00:00:05"), 3600)
	putLease(t, cli, from, "10.244.6.0/24", flannelAttrs(t, "198.51.100.6", "02:00:00:00:00:06"), 3600)
	put(t, cli, to+"/subnets/10.244.6.0-24", "already here", 0)
	srcValue, _, _ := get(t, from+"/subnets/10.244.1.0-24")

	dump := func() string {
		resp, err := cli.Get(testCtx(t), to+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, kv := range resp.Kvs {
			b.WriteString(string(kv.Key) + "\n")
		}
		return b.String()
	}
	before := dump()
	r := ctl(t, nil, to, "leases", "import", "-from", from)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	golden(t, "leases-import-dry-run", r.stdout)
	if after := dump(); after != before {
		t.Errorf("the dry run wrote:\n%s", after)
	}

	r = ctl(t, nil, to, "leases", "import", "-from", from, "-apply")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	golden(t, "leases-import-apply", r.stdout)
	golden(t, "leases-import-keys", dump())
	val, lease, _ := get(t, to+"/subnets/10.244.1.0-24")
	ttl, err := cli.TimeToLive(testCtx(t), clientv3.LeaseID(lease))
	if val != srcValue || err != nil || ttl.GrantedTTL != 7200 || ttl.TTL < 7000 {
		t.Errorf("copy of 10.244.1.0/24: value %s (want %s), TTL %v (%v)", val, srcValue, ttl, err)
	}
	if _, lease, _ := get(t, to+"/subnets/10.244.2.0-24"); lease != 0 {
		t.Errorf("the copy of a reservation has etcd lease %x", lease)
	}
	if v, _, _ := get(t, to+"/subnets/10.244.6.0-24"); v != "already here" {
		t.Errorf("existing key overwritten: %s", v)
	}
	// Copied keys are weft's leases: list reads them.
	if r := ctl(t, nil, to, "leases", "list"); r.err != nil || !strings.Contains(r.stdout, "10.244.3.0/24") {
		t.Errorf("list after import: %v\n%s", r.err, r.stdout)
	}

	r = ctl(t, nil, to, "leases", "import", "-from", from, "-apply", "-o", "json")
	if r.err != nil || strings.Contains(r.stdout, `"copied"`) {
		t.Errorf("a second import copied again: %v\n%s", r.err, r.stdout)
	}

	for _, tc := range []struct {
		name string
		args []string
		err  error
	}{
		{"no source", []string{}, ErrUsage},
		{"same prefix", []string{"-from", to}, ErrUsage},
		{"bad source", []string{"-from", "relative"}, ErrUsage},
		{"empty source", []string{"-from", base + "/nothing"}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, nil, to, append([]string{"leases", "import"}, tc.args...)...)
			if !errors.Is(r.err, tc.err) {
				t.Errorf("err = %v, want %v", r.err, tc.err)
			}
		})
	}
	put(t, cli, base+"/bad/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`, 0)
	if r := ctl(t, nil, to, "leases", "import", "-from", base+"/bad"); !errors.Is(r.err, ErrRefused) || !strings.Contains(r.err.Error(), "Backend.Type") {
		t.Errorf("invalid source config: err = %v", r.err)
	}
}
