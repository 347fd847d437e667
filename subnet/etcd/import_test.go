package etcd_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

func TestImport(t *testing.T) {
	base := etcdtest.Prefix(t)
	from, to := base+"/from", base+"/to"
	n := newNode(t, srv.Client(), to, "", nil)
	ctx := testCtx(t)
	if _, err := n.m.PlanImport(ctx, from); !errors.Is(err, etcd.ErrNoConfig) {
		t.Fatalf("PlanImport of an empty prefix: %v", err)
	}
	putConfig(t, from, `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`)
	flannel := `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}`
	putKey(t, from+"/subnets/10.244.1.0-24", flannel, 7200)
	putKey(t, from+"/subnets/10.244.2.0-24", `{"PublicIP":"198.51.100.2","WeftNode":"n2","WeftFormat":1}`, 0)
	putKey(t, from+"/subnets/10.244.3.0-24", flannel, 3600)
	putKey(t, from+"/subnets/10.244.4.0-24", `{"PublicIP":""}`, 0)
	putKey(t, from+"/subnets/10.245.0.0-24", flannel, 3600)
	putKey(t, from+"/subnets/x", flannel, 0)
	putKey(t, to+"/subnets/10.244.3.0-24", "mine", 0)
	steps, err := n.m.PlanImport(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for _, st := range steps {
		plan = append(plan, fmt.Sprintf("%s %s %s", st.Action, strings.TrimPrefix(st.Key, to), st.Holder))
	}
	want := []string{
		"copy /config ", "copy /subnets/10.244.1.0-24 flannel node 198.51.100.1", "copy /subnets/10.244.2.0-24 n2",
		"skip /subnets/10.244.3.0-24 flannel node 198.51.100.1", "skip /subnets/10.244.4.0-24 ",
		"skip /subnets/10.245.0.0-24 flannel node 198.51.100.1", "skip " + base + "/from/subnets/x ",
	}
	if strings.Join(plan, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(plan, "\n"), strings.Join(want, "\n"))
	}
	// Someone takes 10.244.2.0/24 between the plan and its application.
	putKey(t, to+"/subnets/10.244.2.0-24", "theirs", 0)
	if err := n.m.ApplyImport(ctx, steps); err != nil {
		t.Fatal(err)
	}
	for i, want := range []etcd.ImportAction{etcd.ImportCopied, etcd.ImportCopied, etcd.ImportSkipped, etcd.ImportSkipped} {
		if steps[i].Action != want {
			t.Errorf("step %d (%s): %s, want %s", i, steps[i].Key, steps[i].Action, want)
		}
	}
	if !strings.Contains(steps[2].Detail, "meanwhile") {
		t.Errorf("guarded copy: %q", steps[2].Detail)
	}
	get := func(key string) *clientv3.GetResponse {
		resp, err := srv.Client().Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("%s: %v %v", key, resp, err)
		}
		return resp
	}
	kv := get(to + "/subnets/10.244.1.0-24").Kvs[0]
	left, granted, err := n.m.LeaseTTL(ctx, kv.Lease)
	if string(kv.Value) != flannel || err != nil || granted.Seconds() != 7200 || left.Seconds() < 7000 {
		t.Errorf("copy of 10.244.1.0/24: %s, TTL %s of %s, %v", kv.Value, left, granted, err)
	}
	if v := string(get(to + "/subnets/10.244.2.0-24").Kvs[0].Value); v != "theirs" {
		t.Errorf("a key written meanwhile was overwritten: %s", v)
	}
	if _, err := subnet.ParseConfig(get(to + "/config").Kvs[0].Value); err != nil {
		t.Errorf("copied config: %v", err)
	}
	putConfig(t, base+"/bad", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`)
	if _, err := n.m.PlanImport(ctx, base+"/bad"); !errors.Is(err, subnet.ErrInvalidConfig) {
		t.Errorf("PlanImport of an invalid config: %v", err)
	}
	if _, err := n.m.PlanImport(ctx, "relative"); !errors.Is(err, etcd.ErrInvalidOptions) {
		t.Errorf("PlanImport of a relative prefix: %v", err)
	}
}
