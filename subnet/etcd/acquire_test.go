package etcd_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

const (
	net16 = `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}`
	// net28 has three allocatable subnets: 10.244.0.4/30, 10.244.0.8/30 and 10.244.0.12/30.
	net28 = `{"Network":"10.244.0.0/28","SubnetLen":30,"Backend":{"Type":"vxlan"}}`
)

// getKey reads a key directly.
func getKey(t testing.TB, key string) *mvccpb.KeyValue {
	t.Helper()
	resp, err := srv.Client().Get(testCtx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

func leaseKey(prefix string, l *subnet.Lease) string {
	return prefix + "/subnets/" + subnet.SubnetKey(l.Subnet)
}

func TestAcquireFresh(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	putConfig(t, prefix, net16)
	cfg := parseConfig(t, net16)
	n := newNode(t, srv.Client(), prefix, "n1", func(o *etcd.Options) { o.TTL = time.Hour })
	attrs := attrsFor(1)
	attrs.GossipAddr = mustAddrPort("192.0.2.2:7946")
	before := time.Now()
	l, err := n.m.Acquire(testCtx(t), cfg, attrs)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Allocatable(l.Subnet) {
		t.Fatalf("acquired %s, not an allocatable subnet of %s", l.Subnet, cfg.Network)
	}
	if l.Reserved() || l.Attrs.NodeName != "n1" || l.Attrs.Format != subnet.LeaseFormat {
		t.Fatalf("lease %+v: want an etcd lease, node n1, format %d", l, subnet.LeaseFormat)
	}
	if l.Attrs.AcquiredAt.Before(before.Add(-time.Second)) || l.Attrs.AttrVersion < before.UnixNano() {
		t.Fatalf("AcquiredAt=%s AttrVersion=%d, want now (%s)", l.Attrs.AcquiredAt, l.Attrs.AttrVersion, before)
	}
	if d := time.Until(l.Expiry); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("Expiry in %s, want about the 1h TTL", d)
	}
	kv := getKey(t, leaseKey(prefix, l))
	if kv == nil || kv.Lease != l.EtcdLease || kv.ModRevision != l.ModRevision {
		t.Fatalf("key %s = %v, want etcd lease %x at revision %d", leaseKey(prefix, l), kv, l.EtcdLease, l.ModRevision)
	}
	stored, err := subnet.ParseLeaseAttrs(kv.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Equal(&l.Attrs) {
		t.Fatalf("stored value %+v, want %+v", stored, l.Attrs)
	}
	ttl, err := srv.Client().TimeToLive(testCtx(t), clientv3.LeaseID(l.EtcdLease))
	if err != nil || ttl.GrantedTTL != 3600 {
		t.Fatalf("etcd lease granted TTL %v (%v), want 3600", ttl, err)
	}
	state, err := os.ReadFile(filepath.Join(n.stateDir, etcd.StateFileName))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"NodeName":"n1","Prefix":%q,"Subnet":"%s","EtcdLease":%d}`+"\n", prefix, l.Subnet, l.EtcdLease)
	if string(state) != want {
		t.Fatalf("state file:\n%s\nwant:\n%s", state, want)
	}
}

func TestAcquireBadInput(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	cfg := parseConfig(t, net16)
	anon := newNode(t, srv.Client(), prefix, "", nil)
	if _, err := anon.m.Acquire(testCtx(t), cfg, attrsFor(1)); !errors.Is(err, etcd.ErrInvalidOptions) || !strings.Contains(err.Error(), "NodeName") {
		t.Fatalf("Acquire without a node name: %v, want ErrInvalidOptions naming NodeName", err)
	}
	n := newNode(t, srv.Client(), prefix, "n1", nil)
	bad := attrsFor(1)
	bad.VtepMAC = net.HardwareAddr{1, 2, 3, 4, 5, 6}
	if _, err := n.m.Acquire(testCtx(t), cfg, bad); !errors.Is(err, subnet.ErrInvalidLease) || !strings.Contains(err.Error(), "VtepMAC") {
		t.Fatalf("Acquire with a multicast MAC: %v, want ErrInvalidLease naming VtepMAC", err)
	}
	if _, err := n.m.Acquire(testCtx(t), nil, attrsFor(1)); !errors.Is(err, subnet.ErrInvalidConfig) {
		t.Fatalf("Acquire without config: %v, want ErrInvalidConfig", err)
	}
}

// TestAcquireRestart covers a node coming back with its state directory: it gets its subnet and
// etcd lease back whenever they still exist and are free.
func TestAcquireRestart(t *testing.T) {
	cfg := parseConfig(t, net16)
	type check struct{ sameSubnet, sameLease, sameModRev, sameAttrVersion, sameAcquiredAt bool }
	tests := []struct {
		name string
		// between runs while the node is down; it may change the attributes the node comes back
		// with.
		between func(t *testing.T, prefix string, l *subnet.Lease, attrs *subnet.LeaseAttrs)
		want    check
	}{
		{
			name:    "key still held",
			between: func(*testing.T, string, *subnet.Lease, *subnet.LeaseAttrs) {},
			want:    check{sameSubnet: true, sameLease: true, sameModRev: true, sameAttrVersion: true, sameAcquiredAt: true},
		},
		{
			name: "new VTEP MAC",
			between: func(_ *testing.T, _ string, _ *subnet.Lease, a *subnet.LeaseAttrs) {
				a.VtepMAC = net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
			},
			want: check{sameSubnet: true, sameLease: true, sameAcquiredAt: true},
		},
		{
			name: "key deleted, etcd lease alive",
			between: func(t *testing.T, prefix string, l *subnet.Lease, _ *subnet.LeaseAttrs) {
				if _, err := srv.Client().Delete(testCtx(t), leaseKey(prefix, l)); err != nil {
					t.Fatal(err)
				}
			},
			want: check{sameSubnet: true, sameLease: true},
		},
		{
			name: "etcd lease revoked",
			between: func(t *testing.T, _ string, l *subnet.Lease, _ *subnet.LeaseAttrs) {
				if _, err := srv.Client().Revoke(testCtx(t), clientv3.LeaseID(l.EtcdLease)); err != nil {
					t.Fatal(err)
				}
			},
			want: check{sameSubnet: true},
		},
		{
			name: "subnet taken meanwhile",
			between: func(t *testing.T, prefix string, l *subnet.Lease, _ *subnet.LeaseAttrs) {
				if _, err := srv.Client().Delete(testCtx(t), leaseKey(prefix, l)); err != nil {
					t.Fatal(err)
				}
				other := attrsFor(9)
				other.NodeName = "thief"
				v, _ := other.MarshalJSON()
				if _, err := srv.Client().Put(testCtx(t), leaseKey(prefix, l), string(v)); err != nil {
					t.Fatal(err)
				}
			},
			want: check{sameLease: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			first := newNode(t, srv.Client(), prefix, "n1", nil)
			attrs := attrsFor(1)
			l1, err := first.m.Acquire(testCtx(t), cfg, attrs)
			if err != nil {
				t.Fatal(err)
			}
			tt.between(t, prefix, l1, &attrs)
			l2, err := first.restarted(t, srv.Client(), prefix).m.Acquire(testCtx(t), cfg, attrs)
			if err != nil {
				t.Fatal(err)
			}
			got := check{
				sameSubnet:      l1.Subnet == l2.Subnet,
				sameLease:       l1.EtcdLease == l2.EtcdLease,
				sameModRev:      l1.ModRevision == l2.ModRevision,
				sameAttrVersion: l1.Attrs.AttrVersion == l2.Attrs.AttrVersion,
				sameAcquiredAt:  l1.Attrs.AcquiredAt.Equal(l2.Attrs.AcquiredAt),
			}
			if got != tt.want {
				t.Fatalf("after restart %+v, want %+v (before %s lease %x, after %s lease %x)", got, tt.want, l1.Subnet, l1.EtcdLease, l2.Subnet, l2.EtcdLease)
			}
			if l2.Attrs.AttrVersion < l1.Attrs.AttrVersion {
				t.Fatalf("AttrVersion went back from %d to %d", l1.Attrs.AttrVersion, l2.Attrs.AttrVersion)
			}
			kv := getKey(t, leaseKey(prefix, l2))
			stored, err := subnet.ParseLeaseAttrs(kv.Value)
			if err != nil || !stored.Equal(&l2.Attrs) || kv.Lease != l2.EtcdLease {
				t.Fatalf("stored %+v lease %x (%v), want %+v lease %x", stored, kv.Lease, err, l2.Attrs, l2.EtcdLease)
			}
		})
	}
}

// TestAcquireStateFile checks which local state files are used and that unusable ones are ignored.
func TestAcquireStateFile(t *testing.T) {
	cfg := parseConfig(t, net16)
	tests := []struct {
		name  string
		state string // %s is replaced by the prefix
		want  string // expected subnet; empty for any
	}{
		{"preferred subnet", `{"NodeName":"n1","Prefix":"%s","Subnet":"10.244.77.0/24","EtcdLease":0}`, "10.244.77.0/24"},
		{"subnet outside the config", `{"NodeName":"n1","Prefix":"%s","Subnet":"10.9.77.0/24","EtcdLease":0}`, ""},
		{"another node's state", `{"NodeName":"n2","Prefix":"%s","Subnet":"10.244.77.0/24","EtcdLease":0}`, ""},
		{"another prefix", `{"NodeName":"n1","Prefix":"/elsewhere","Subnet":"10.244.77.0/24","EtcdLease":0}`, ""},
		{"unknown field", `{"NodeName":"n1","Prefix":"%s","Subnet":"10.244.77.0/24","Lease":0}`, ""},
		{"not JSON", `10.244.77.0/24`, ""},
		{"dead etcd lease", `{"NodeName":"n1","Prefix":"%s","Subnet":"10.244.78.0/24","EtcdLease":12345}`, "10.244.78.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			n := newNode(t, srv.Client(), prefix, "n1", nil)
			state := strings.ReplaceAll(tt.state, "%s", prefix)
			if err := os.WriteFile(filepath.Join(n.stateDir, etcd.StateFileName), []byte(state), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := n.m.Acquire(testCtx(t), cfg, attrsFor(1))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && l.Subnet.String() != tt.want {
				t.Fatalf("acquired %s, want %s", l.Subnet, tt.want)
			}
			if !cfg.Allocatable(l.Subnet) {
				t.Fatalf("acquired %s, not allocatable", l.Subnet)
			}
			if l.EtcdLease == 12345 {
				t.Fatal("attached the key to the dead etcd lease of the state file")
			}
		})
	}
}

// occupy writes raw keys under prefix/subnets/.
func occupy(t testing.TB, prefix string, kvs map[string]string) {
	t.Helper()
	for k, v := range kvs {
		if _, err := srv.Client().Put(testCtx(t), prefix+"/subnets/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
}

func weftValue(t testing.TB, i int, nodeName string) string {
	t.Helper()
	a := attrsFor(i)
	a.NodeName = nodeName
	a.Format = subnet.LeaseFormat
	v, err := a.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// TestAcquireOccupied checks that every key naming a subnet, whatever its value, and every key of
// another length overlapping a subnet, keeps that subnet from being handed out.
func TestAcquireOccupied(t *testing.T) {
	cfg := parseConfig(t, net28)
	tests := []struct {
		name string
		keys map[string]string
		want []string // subnets a new node may get; none: ErrNoFreeSubnet
	}{
		{
			name: "malformed values",
			keys: map[string]string{"10.244.0.4-30": "garbage", "10.244.0.8-30": `{"PublicIP":"198.51.100.9"}`},
			want: []string{"10.244.0.12/30"},
		},
		{
			name: "overlapping key of another length",
			keys: map[string]string{"10.244.0.0-29": weftValue(t, 1, "wide"), "10.244.0.12-30": "{"},
			want: []string{"10.244.0.8/30"},
		},
		{
			name: "dual-stack key form",
			keys: map[string]string{"10.244.0.4-30&fc00::-64": weftValue(t, 1, "ds"), "10.244.0.8-30": "", "10.244.0.12-30": "null"},
		},
		{
			name: "unparseable key names nothing",
			keys: map[string]string{"garbage": "x", "10.244.0.4-30": "x", "10.244.0.8-30": "x"},
			want: []string{"10.244.0.12/30"},
		},
		{
			name: "reservation of another node",
			keys: map[string]string{"10.244.0.4-30": weftValue(t, 1, "other"), "10.244.0.12-30": `{"WeftNode":"r"}`},
			want: []string{"10.244.0.8/30"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			occupy(t, prefix, tt.keys)
			for i := range 3 {
				n := newNode(t, srv.Client(), prefix, fmt.Sprintf("new%d", i), nil)
				l, err := n.m.Acquire(testCtx(t), cfg, attrsFor(2))
				if i >= len(tt.want) {
					if !errors.Is(err, etcd.ErrNoFreeSubnet) || !strings.Contains(err.Error(), "no free subnet") {
						t.Fatalf("acquisition %d: %v %v, want ErrNoFreeSubnet", i, l, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("acquisition %d: %v", i, err)
				}
				if !slices.Contains(tt.want, l.Subnet.String()) {
					t.Fatalf("acquisition %d got %s, want one of %v", i, l.Subnet, tt.want)
				}
			}
		})
	}
}

// TestReservationHonoured checks that a reservation is never given to another node and that its
// node reuses it without a TTL, by node name or, for a value without one, by public IP.
func TestReservationHonoured(t *testing.T) {
	cfg := parseConfig(t, net28)
	prefix := etcdtest.Prefix(t)
	putConfig(t, prefix, net28)
	admin := newNode(t, srv.Client(), prefix, "", nil)
	if err := admin.m.Reserve(testCtx(t), mustPrefix("10.244.0.8/30"), subnet.LeaseAttrs{NodeName: "n7", PublicIP: mustAddr("192.0.2.8")}); err != nil {
		t.Fatal(err)
	}
	flannelReserved := `{"PublicIP":"198.51.100.200","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`
	occupy(t, prefix, map[string]string{"10.244.0.12-30": flannelReserved})

	other := newNode(t, srv.Client(), prefix, "other", nil)
	if l, err := other.m.Acquire(testCtx(t), cfg, attrsFor(1)); err != nil || l.Subnet != mustPrefix("10.244.0.4/30") {
		t.Fatalf("other node got %v, %v; want the only unreserved subnet 10.244.0.4/30", l, err)
	}
	late := newNode(t, srv.Client(), prefix, "late", nil)
	if l, err := late.m.Acquire(testCtx(t), cfg, attrsFor(2)); !errors.Is(err, etcd.ErrNoFreeSubnet) {
		t.Fatalf("late node got %v, %v; want ErrNoFreeSubnet", l, err)
	}

	n7 := newNode(t, srv.Client(), prefix, "n7", nil)
	l7, err := n7.m.Acquire(testCtx(t), cfg, attrsFor(7))
	if err != nil {
		t.Fatal(err)
	}
	if l7.Subnet != mustPrefix("10.244.0.8/30") || !l7.Reserved() {
		t.Fatalf("n7 got %s (etcd lease %x), want its reservation 10.244.0.8/30 without etcd lease", l7.Subnet, l7.EtcdLease)
	}
	// The flannel-style reservation names no node: the node with its public IP gets it.
	byIP := newNode(t, srv.Client(), prefix, "n200", nil)
	a := attrsFor(1)
	a.PublicIP = mustAddr("198.51.100.200")
	l200, err := byIP.m.Acquire(testCtx(t), cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	if l200.Subnet != mustPrefix("10.244.0.12/30") || !l200.Reserved() {
		t.Fatalf("n200 got %s (etcd lease %x), want the reservation for its IP, 10.244.0.12/30", l200.Subnet, l200.EtcdLease)
	}
	ls, err := admin.m.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := `10.244.0.4/30 lease public=192.0.2.2 vni=1 mac=02:00:00:00:00:01 node="other" format=1
10.244.0.8/30 reserved public=192.0.2.8 vni=1 mac=02:00:00:00:00:07 node="n7" format=1
10.244.0.12/30 reserved public=198.51.100.200 vni=1 mac=02:00:00:00:00:01 node="n200" format=1
`
	if got := render(ls); got != want {
		t.Fatalf("leases:\n%s\nwant:\n%s", got, want)
	}
	// A restart reuses the reservation again, still without an etcd lease.
	again, err := n7.restarted(t, srv.Client(), prefix).m.Acquire(testCtx(t), cfg, attrsFor(7))
	if err != nil || again.Subnet != l7.Subnet || !again.Reserved() || again.ModRevision != l7.ModRevision {
		t.Fatalf("n7 after restart: %+v, %v; want the same reservation unchanged", again, err)
	}
}

// TestAcquireConcurrent has 256 nodes race for the 255 subnets of a /16: each subnet goes to exactly
// one node and exactly one node gets a clean ErrNoFreeSubnet.
func TestAcquireConcurrent(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	putConfig(t, prefix, net16)
	leases, errs := acquireConcurrently(t, prefix, parseConfig(t, net16), 256)
	var noFree int
	for i, err := range errs {
		switch {
		case errors.Is(err, etcd.ErrNoFreeSubnet):
			noFree++
		case err != nil:
			t.Errorf("node %d: %v", i, err)
		}
	}
	if noFree != 1 {
		t.Errorf("%d nodes got ErrNoFreeSubnet, want 1", noFree)
	}
	seen := make(map[string]int)
	for i, l := range leases {
		if l == nil {
			continue
		}
		if prev, dup := seen[l.Subnet.String()]; dup {
			t.Errorf("%s granted to node %d and node %d", l.Subnet, prev, i)
		}
		seen[l.Subnet.String()] = i
	}
	if len(seen) != 255 {
		t.Errorf("%d distinct subnets granted, want 255", len(seen))
	}
	resp, err := srv.Client().Get(testCtx(t), prefix+"/subnets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	owners := make(map[string]bool)
	for _, kv := range resp.Kvs {
		a, err := subnet.ParseLeaseAttrs(kv.Value)
		if err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		if owners[a.NodeName] {
			t.Errorf("node %s holds two keys", a.NodeName)
		}
		owners[a.NodeName] = true
	}
	if len(resp.Kvs) != 255 {
		t.Errorf("%d keys in etcd, want 255", len(resp.Kvs))
	}
}

// acquireConcurrently starts n nodes at once and returns what each got.
func acquireConcurrently(t testing.TB, prefix string, cfg *subnet.Config, n int) ([]*subnet.Lease, []error) {
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newNode(t, srv.Client(), prefix, fmt.Sprintf("node-%03d", i), func(o *etcd.Options) { o.Logger = nil })
	}
	leases := make([]*subnet.Lease, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() {
			<-start
			leases[i], errs[i] = nd.m.Acquire(testCtx(t), cfg, attrsFor(i))
		})
	}
	close(start)
	wg.Wait()
	return leases, errs
}

func TestUpdateAttrs(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	cfg := parseConfig(t, net16)
	n := newNode(t, srv.Client(), prefix, "n1", nil)
	l, err := n.m.Acquire(testCtx(t), cfg, attrsFor(1))
	if err != nil {
		t.Fatal(err)
	}
	same, err := n.m.UpdateAttrs(testCtx(t), l, attrsFor(1))
	if err != nil || same.ModRevision != l.ModRevision || same.Attrs.AttrVersion != l.Attrs.AttrVersion {
		t.Fatalf("UpdateAttrs with unchanged attributes: %+v, %v; want no write", same, err)
	}
	changed := attrsFor(1)
	changed.VtepMAC = net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	changed.GossipAddr = mustAddrPort("192.0.2.2:7946")
	l2, err := n.m.UpdateAttrs(testCtx(t), l, changed)
	if err != nil {
		t.Fatal(err)
	}
	if l2.ModRevision <= l.ModRevision || l2.Attrs.AttrVersion <= l.Attrs.AttrVersion || l2.EtcdLease != l.EtcdLease ||
		!l2.Attrs.AcquiredAt.Equal(l.Attrs.AcquiredAt) {
		t.Fatalf("after update %+v, want a newer revision and AttrVersion, same etcd lease and AcquiredAt as %+v", l2, l)
	}
	kv := getKey(t, leaseKey(prefix, l))
	stored, err := subnet.ParseLeaseAttrs(kv.Value)
	if err != nil || !stored.Equal(&l2.Attrs) || kv.Lease != l.EtcdLease {
		t.Fatalf("stored %+v lease %x (%v), want %+v lease %x", stored, kv.Lease, err, l2.Attrs, l.EtcdLease)
	}
	// An update from the stale copy still lands: the key still names this node.
	back := attrsFor(1)
	back.VNI = 3
	l3, err := n.m.UpdateAttrs(testCtx(t), l, back)
	if err != nil || l3.ModRevision <= l2.ModRevision || l3.Attrs.AttrVersion <= l.Attrs.AttrVersion {
		t.Fatalf("UpdateAttrs from a stale revision: %+v, %v; want a write", l3, err)
	}

	v := weftValue(t, 5, "thief")
	if _, err := srv.Client().Put(testCtx(t), leaseKey(prefix, l), v); err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.UpdateAttrs(testCtx(t), l3, changed); !errors.Is(err, etcd.ErrLeaseLost) || !strings.Contains(err.Error(), `node "thief"`) {
		t.Fatalf("UpdateAttrs of a taken key: %v, want ErrLeaseLost naming the thief", err)
	}
	if _, err := srv.Client().Delete(testCtx(t), leaseKey(prefix, l)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.UpdateAttrs(testCtx(t), l3, changed); !errors.Is(err, etcd.ErrLeaseLost) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("UpdateAttrs of a deleted key: %v, want ErrLeaseLost", err)
	}
	if getKey(t, leaseKey(prefix, l)) != nil {
		t.Fatal("UpdateAttrs re-created a deleted key")
	}
}
