package etcd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

// flannelDump is `etcdctl get --prefix /coreos.com/network -w json` taken from two flannel v0.28.9
// nodes (testdata/flannel-etcd-dump.json, from the project's flannel compatibility fixtures).
type flannelDump struct {
	KVs []struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
		Lease int64  `json:"lease"`
	} `json:"kvs"`
}

// loadFlannelDump writes the fixture's keys, values and etcd lease IDs (24 h, as flannel grants)
// into etcd under flannel's prefix, which it clears before and after the test.
func loadFlannelDump(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("testdata/flannel-etcd-dump.json")
	if err != nil {
		t.Fatal(err)
	}
	var dump flannelDump
	if err := json.Unmarshal(data, &dump); err != nil {
		t.Fatal(err)
	}
	cli := srv.Client()
	cleanPrefix(t, etcd.FlannelPrefix)
	leases := pb.NewLeaseClient(cli.ActiveConnection())
	for _, kv := range dump.KVs {
		var opts []clientv3.OpOption
		if kv.Lease != 0 {
			revoke := func() {
				_, err := cli.Revoke(context.Background(), clientv3.LeaseID(kv.Lease))
				if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
					t.Errorf("revoking fixture lease %x: %v", kv.Lease, err)
				}
			}
			revoke()
			t.Cleanup(revoke)
			if _, err := leases.LeaseGrant(testCtx(t), &pb.LeaseGrantRequest{ID: kv.Lease, TTL: 24 * 3600}); err != nil {
				t.Fatal(err)
			}
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		}
		if _, err := cli.Put(testCtx(t), string(kv.Key), string(kv.Value), opts...); err != nil {
			t.Fatal(err)
		}
	}
}

// flannelLeaseValue mirrors the types flannel decodes a lease value into; extra keys are ignored, as
// flannel's decoder does.
type flannelLeaseValue struct {
	PublicIP    string
	PublicIPv6  *string
	BackendType string
	BackendData json.RawMessage
}

type flannelVXLANData struct {
	VNI     uint16
	VtepMAC string
}

// decodeAsFlannel decodes a value the way a flannel node reads it, failing on any type flannel
// would reject.
func decodeAsFlannel(t *testing.T, value []byte) string {
	t.Helper()
	var v flannelLeaseValue
	if err := json.Unmarshal(value, &v); err != nil {
		t.Fatalf("flannel cannot decode %s: %v", value, err)
	}
	if net.ParseIP(v.PublicIP).To4() == nil {
		t.Fatalf("PublicIP %q of %s is not the IPv4 address flannel wants", v.PublicIP, value)
	}
	var d flannelVXLANData
	dec := json.NewDecoder(bytes.NewReader(v.BackendData))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("flannel cannot decode BackendData %s: %v", v.BackendData, err)
	}
	if _, err := net.ParseMAC(d.VtepMAC); err != nil {
		t.Fatalf("flannel cannot parse VtepMAC %q: %v", d.VtepMAC, err)
	}
	return fmt.Sprintf("PublicIP=%s PublicIPv6=%v BackendType=%s VNI=%d VtepMAC=%s", v.PublicIP, v.PublicIPv6, v.BackendType, d.VNI, d.VtepMAC)
}

func TestFlannelCompat(t *testing.T) {
	loadFlannelDump(t)
	admin := newNode(t, srv.Client(), etcd.FlannelPrefix, "", nil)
	cfg, err := admin.m.Config(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := renderConfig(cfg), "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=1 port=8472"; got != want {
		t.Fatalf("config %s, want %s", got, want)
	}

	t.Run("list reads flannel's values exactly", func(t *testing.T) {
		ls, err := admin.m.List(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		want := `10.244.31.0/24 lease public=198.51.100.1 vni=1 mac=16:5f:89:33:07:c4 node="" format=0
10.244.91.0/24 lease public=198.51.100.2 vni=1 mac=46:11:2e:5e:cf:bf node="" format=0
`
		if got := render(ls); got != want {
			t.Fatalf("leases:\n%s\nwant:\n%s", got, want)
		}
		if ls.Leases[0].EtcdLease != 7587899153806453775 || ls.Leases[1].EtcdLease != 7587899153806453769 {
			t.Fatalf("etcd leases %x, %x; want the fixture's", ls.Leases[0].EtcdLease, ls.Leases[1].EtcdLease)
		}
		if err := admin.m.FillExpiry(testCtx(t), &ls); err != nil {
			t.Fatal(err)
		}
		for _, l := range ls.Leases {
			if l.Expiry.IsZero() {
				t.Fatalf("%s: no expiry", l.Subnet)
			}
		}
	})

	t.Run("weft's value reads as flannel's", func(t *testing.T) {
		n := newNode(t, srv.Client(), etcd.FlannelPrefix, "weft-1", nil)
		a := attrsFor(3)
		a.VNI = 1
		a.GossipAddr = mustAddrPort("192.0.2.4:7946")
		l, err := n.m.Acquire(testCtx(t), cfg, a)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeAsFlannel(t, getKey(t, leaseKey(etcd.FlannelPrefix, l)).Value)
		want := "PublicIP=192.0.2.4 PublicIPv6=<nil> BackendType=vxlan VNI=1 VtepMAC=02:00:00:00:00:03"
		if got != want {
			t.Fatalf("flannel reads %s, want %s", got, want)
		}
		if err := admin.m.Reclaim(testCtx(t), l.Subnet); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("weft nodes never get flannel's subnets", func(t *testing.T) {
		// The first node prefers flannel node 1's subnet from its local state.
		n := newNode(t, srv.Client(), etcd.FlannelPrefix, "weft-pref", nil)
		state := `{"NodeName":"weft-pref","Prefix":"/coreos.com/network","Subnet":"10.244.31.0/24","EtcdLease":0}`
		if err := os.WriteFile(n.stateDir+"/"+etcd.StateFileName, []byte(state), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := n.m.Acquire(testCtx(t), cfg, attrsFor(100))
		if err != nil {
			t.Fatal(err)
		}
		if l.Subnet == mustPrefix("10.244.31.0/24") {
			t.Fatal("a weft node took flannel node 1's subnet")
		}
		// The other 252 free subnets, then none.
		leases, errs := acquireConcurrently(t, etcd.FlannelPrefix, cfg, 253)
		var noFree int
		for i, l := range leases {
			switch {
			case errors.Is(errs[i], etcd.ErrNoFreeSubnet):
				noFree++
			case errs[i] != nil:
				t.Fatalf("node %d: %v", i, errs[i])
			case l.Subnet == mustPrefix("10.244.31.0/24") || l.Subnet == mustPrefix("10.244.91.0/24"):
				t.Fatalf("node %d got flannel's subnet %s", i, l.Subnet)
			}
		}
		if noFree != 1 {
			t.Fatalf("%d nodes found no free subnet, want 1", noFree)
		}
		ls, err := admin.m.List(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(ls.Leases) != 255 || len(ls.Malformed) != 0 {
			t.Fatalf("%d leases, %d malformed; want 255 and 0", len(ls.Leases), len(ls.Malformed))
		}
		flannel := render(etcd.LeaseSet{Leases: []subnet.Lease{ls.Leases[30], ls.Leases[90]}})
		if !strings.Contains(flannel, `10.244.31.0/24 lease public=198.51.100.1 vni=1 mac=16:5f:89:33:07:c4 node="" format=0`) ||
			!strings.Contains(flannel, `10.244.91.0/24 lease public=198.51.100.2 vni=1 mac=46:11:2e:5e:cf:bf node="" format=0`) {
			t.Fatalf("flannel's leases changed:\n%s", flannel)
		}
	})
}

// TestFlannelMigration checks that a weft node started on a flannel node's address takes over
// that node's lease, subnet and etcd lease.
func TestFlannelMigration(t *testing.T) {
	loadFlannelDump(t)
	n := newNode(t, srv.Client(), etcd.FlannelPrefix, "node-1", nil)
	cfg, err := n.m.Config(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	a := attrsFor(1)
	a.PublicIP = mustAddr("198.51.100.1")
	l, err := n.m.Acquire(testCtx(t), cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	if l.Subnet != mustPrefix("10.244.31.0/24") || l.EtcdLease != 7587899153806453775 {
		t.Fatalf("got %s etcd lease %x, want flannel node 1's 10.244.31.0/24 with etcd lease %x", l.Subnet, l.EtcdLease, int64(7587899153806453775))
	}
	kv := getKey(t, leaseKey(etcd.FlannelPrefix, l))
	stored, err := subnet.ParseLeaseAttrs(kv.Value)
	if err != nil || stored.NodeName != "node-1" || kv.Lease != l.EtcdLease {
		t.Fatalf("stored %+v lease %x (%v), want node-1's value on the same etcd lease", stored, kv.Lease, err)
	}
	if got, want := decodeAsFlannel(t, kv.Value), "PublicIP=198.51.100.1 PublicIPv6=<nil> BackendType=vxlan VNI=1 VtepMAC=02:00:00:00:00:01"; got != want {
		t.Fatalf("flannel reads %s, want %s", got, want)
	}
}
