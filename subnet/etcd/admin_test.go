package etcd_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

func TestReserve(t *testing.T) {
	cfg := parseConfig(t, net16)
	tests := []struct {
		name    string
		setup   func(t *testing.T, prefix string) // runs before Reserve
		subnet  string
		node    string
		ip      string // public IP; 192.0.2.8 when empty
		wantErr error
		errText string
		// want renders the key afterwards: "lease" or "reserved", and its node.
		want string
	}{
		{name: "new reservation", subnet: "10.244.7.0/24", node: "n7", want: `reserved node="n7"`},
		{
			name: "node's lease becomes a reservation",
			setup: func(t *testing.T, prefix string) {
				n := newNode(t, srv.Client(), prefix, "n7", nil)
				acquireAt(t, n, cfg, "10.244.7.0/24", attrsFor(7))
			},
			subnet: "10.244.7.0/24", node: "n7", want: `reserved node="n7" mac=02:00:00:00:00:07`,
		},
		{
			name: "existing reservation is kept",
			setup: func(t *testing.T, prefix string) {
				occupy(t, prefix, map[string]string{"10.244.7.0-24": weftValue(t, 7, "n7")})
			},
			subnet: "10.244.7.0/24", node: "n7", want: `reserved node="n7" mac=02:00:00:00:00:07`,
		},
		{
			name: "held by another node",
			setup: func(t *testing.T, prefix string) {
				n := newNode(t, srv.Client(), prefix, "n8", nil)
				acquireAt(t, n, cfg, "10.244.7.0/24", attrsFor(8))
			},
			subnet: "10.244.7.0/24", node: "n7", wantErr: etcd.ErrSubnetInUse, errText: `held by node "n8"`,
			want: `lease node="n8" mac=02:00:00:00:00:08`,
		},
		{
			name: "held by a flannel node",
			setup: func(t *testing.T, prefix string) {
				occupy(t, prefix, map[string]string{"10.244.7.0-24": `{"PublicIP":"198.51.100.1"}`})
			},
			subnet: "10.244.7.0/24", node: "n7", wantErr: etcd.ErrSubnetInUse, errText: "flannel node at 198.51.100.1",
			want: `reserved node=""`,
		},
		{name: "wrong length", subnet: "10.244.7.0/25", node: "n7", wantErr: etcd.ErrInvalidSubnet, errText: "want a /24 subnet of 10.244.0.0/16"},
		{name: "outside the network", subnet: "10.9.7.0/24", node: "n7", wantErr: etcd.ErrInvalidSubnet},
		{name: "host bits", subnet: "10.244.7.1/24", node: "n7", wantErr: etcd.ErrInvalidSubnet},
		{name: "no node name", subnet: "10.244.7.0/24", wantErr: subnet.ErrInvalidLease, errText: `NodeName=""`},
		{name: "no public IP", subnet: "10.244.7.0/24", node: "n7", ip: "0.0.0.0", wantErr: subnet.ErrInvalidLease, errText: `PublicIP="0.0.0.0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			putConfig(t, prefix, net16)
			if tt.setup != nil {
				tt.setup(t, prefix)
			}
			admin := newNode(t, srv.Client(), prefix, "", nil)
			s := mustPrefix(tt.subnet)
			if tt.ip == "" {
				tt.ip = "192.0.2.8"
			}
			err := admin.m.Reserve(testCtx(t), s, subnet.LeaseAttrs{NodeName: tt.node, PublicIP: mustAddr(tt.ip)})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Reserve: %v, want %v mentioning %q", err, tt.wantErr, tt.errText)
				}
			} else if err != nil {
				t.Fatalf("Reserve: %v", err)
			}
			if tt.want == "" {
				if kv := getKey(t, prefix+"/subnets/"+subnet.SubnetKey(s.Masked())); kv != nil {
					t.Fatalf("a failed Reserve left key %s", kv.Key)
				}
				return
			}
			kv := getKey(t, prefix+"/subnets/"+subnet.SubnetKey(s))
			if kv == nil {
				t.Fatal("no key")
			}
			kind := "reserved"
			if kv.Lease != 0 {
				kind = "lease"
			}
			got := fmt.Sprintf("%s node=%q", kind, nodeOf(kv.Value))
			if a, err := subnet.ParseLeaseAttrs(kv.Value); err == nil {
				got += fmt.Sprintf(" mac=%s", a.VtepMAC)
			}
			if got != tt.want {
				t.Fatalf("key is %s, want %s", got, tt.want)
			}
		})
	}
}

// leaseAlive reports whether etcd lease id exists.
func leaseAlive(t testing.TB, id int64) bool {
	t.Helper()
	resp, err := srv.Client().TimeToLive(testCtx(t), clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return resp.TTL > 0
}

// nodeOf extracts the node name of a value that does not validate.
func nodeOf(value []byte) string {
	_, after, ok := strings.Cut(string(value), `"WeftNode":"`)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(after, `"`)
	return name
}

func TestReclaim(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	putConfig(t, prefix, net16)
	cfg := parseConfig(t, net16)
	admin := newNode(t, srv.Client(), prefix, "", nil)
	cli := srv.Client()

	n1 := newNode(t, cli, prefix, "n1", nil)
	l1 := acquireAt(t, n1, cfg, "10.244.1.0/24", attrsFor(1))
	if err := admin.m.Reclaim(testCtx(t), l1.Subnet); err != nil {
		t.Fatal(err)
	}
	if getKey(t, leaseKey(prefix, l1)) != nil {
		t.Fatal("key still there after Reclaim")
	}
	if leaseAlive(t, l1.EtcdLease) {
		t.Fatalf("etcd lease %x still alive after Reclaim", l1.EtcdLease)
	}
	if err := admin.m.Reclaim(testCtx(t), l1.Subnet); err != nil {
		t.Fatalf("Reclaim of a free subnet: %v, want nil", err)
	}

	// An etcd lease another key still uses survives.
	n2 := newNode(t, cli, prefix, "n2", nil)
	l2 := acquireAt(t, n2, cfg, "10.244.2.0/24", attrsFor(2))
	other := prefix + "/other"
	if _, err := cli.Put(testCtx(t), other, "x", clientv3.WithLease(clientv3.LeaseID(l2.EtcdLease))); err != nil {
		t.Fatal(err)
	}
	if err := admin.m.Reclaim(testCtx(t), l2.Subnet); err != nil {
		t.Fatal(err)
	}
	if getKey(t, leaseKey(prefix, l2)) != nil || !leaseAlive(t, l2.EtcdLease) || getKey(t, other) == nil {
		t.Fatal("Reclaim must delete the subnet key and keep the etcd lease of the other key")
	}

	// Reservations and dual-stack keys go too.
	occupy(t, prefix, map[string]string{"10.244.3.0-24": weftValue(t, 3, "r"), "10.244.4.0-24&fc00::-64": weftValue(t, 4, "ds")})
	for _, s := range []string{"10.244.3.0/24", "10.244.4.0/24"} {
		if err := admin.m.Reclaim(testCtx(t), mustPrefix(s)); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := admin.m.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := render(ls); got != "" {
		t.Fatalf("leases left after Reclaim:\n%s", got)
	}
}

func TestHistory(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	putConfig(t, prefix, net16)
	cfg := parseConfig(t, net16)
	admin := newNode(t, srv.Client(), prefix, "", nil)
	s := mustPrefix("10.244.5.0/24")

	empty, err := admin.m.History(testCtx(t), s)
	if err != nil || len(empty.Entries) != 0 {
		t.Fatalf("History of a never-used subnet: %+v, %v; want no entries", empty, err)
	}

	n1 := newNode(t, srv.Client(), prefix, "n1", nil)
	l1 := acquireAt(t, n1, cfg, s.String(), attrsFor(1))
	a := attrsFor(1)
	a.VNI = 2
	if _, err := n1.m.UpdateAttrs(testCtx(t), l1, a); err != nil {
		t.Fatal(err)
	}
	if err := admin.m.Reclaim(testCtx(t), s); err != nil {
		t.Fatal(err)
	}
	occupy(t, prefix, map[string]string{"10.244.5.0-24": "garbage"})
	n2 := newNode(t, srv.Client(), prefix, "n2", nil)
	if err := admin.m.Reclaim(testCtx(t), s); err != nil {
		t.Fatal(err)
	}
	acquireAt(t, n2, cfg, s.String(), attrsFor(2))

	h, err := admin.m.History(testCtx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	want := `put n1 vni=1 lease
put n1 vni=2 lease
delete
put malformed
delete
put n2 vni=1 lease
`
	if got := renderHistory(h); got != want {
		t.Fatalf("history:\n%s\nwant:\n%s", got, want)
	}
	if h.Key != prefix+"/subnets/10.244.5.0-24" || h.Since > h.Entries[0].Revision || h.Revision < h.Entries[len(h.Entries)-1].Revision {
		t.Fatalf("history key %s since %d to %d, entries from %d to %d", h.Key, h.Since, h.Revision, h.Entries[0].Revision, h.Entries[len(h.Entries)-1].Revision)
	}

	// After a compaction only the value in force at the compaction point and later writes remain.
	compacted, err := srv.Compact(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.m.Reclaim(testCtx(t), s); err != nil {
		t.Fatal(err)
	}
	h, err = admin.m.History(testCtx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := renderHistory(h), "put n2 vni=1 lease\ndelete\n"; got != want {
		t.Fatalf("history after compaction:\n%s\nwant:\n%s", got, want)
	}
	if h.Since != compacted {
		t.Fatalf("Since = %d, want the compaction revision %d", h.Since, compacted)
	}
}

func renderHistory(h etcd.SubnetHistory) string {
	var b strings.Builder
	for _, e := range h.Entries {
		switch {
		case e.Deleted:
			b.WriteString("delete\n")
		case e.Err != nil:
			b.WriteString("put malformed\n")
		default:
			kind := "lease"
			if e.EtcdLease == 0 {
				kind = "reserved"
			}
			fmt.Fprintf(&b, "put %s vni=%d %s\n", e.Attrs.NodeName, e.Attrs.VNI, kind)
		}
	}
	return b.String()
}
