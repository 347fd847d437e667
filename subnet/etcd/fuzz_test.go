package etcd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/weft-net/weft/subnet"
)

// offline returns a manager for the functions that need no etcd.
func offline(t testing.TB, node, stateDir string) *Manager {
	opts := Options{NodeName: node, StateDir: stateDir}
	opts.SetDefaults()
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	return &Manager{opts: opts, log: opts.Logger}
}

// FuzzLeaseSet feeds one arbitrary key name and value to the lease set builder: it never panics,
// reports the key exactly once, as a lease only when both parse, and the subnet the key names is
// never free for allocation, whatever the value.
func FuzzLeaseSet(f *testing.F) {
	f.Add("10.244.31.0-24", []byte(`{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`))
	f.Add("10.244.7.0-24&fc00::-64", []byte(`{"PublicIP":"198.51.100.7","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:07"},"WeftNode":"n7","WeftFormat":1}`))
	f.Add("10.244.7.1-24", []byte(`{}`))
	f.Add("garbage", []byte("x"))
	f.Add("10.244.0.0-16/extra", []byte(`{"WeftNode":"n"}`))
	f.Add("10.244.8.0-24", []byte(`{"PublicIP":"198.51.100.1","PublicIPv6":"fc00::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`))
	m := offline(f, "n1", "")
	f.Fuzz(func(t *testing.T, name string, value []byte) {
		kv := &mvccpb.KeyValue{Key: []byte(m.SubnetsPrefix() + name), Value: value, Lease: 3, ModRevision: 7}
		ls := m.leaseSet([]*mvccpb.KeyValue{kv}, 7)
		if len(ls.Leases)+len(ls.Malformed) != 1 {
			t.Fatalf("one key gave %d leases and %d malformed", len(ls.Leases), len(ls.Malformed))
		}
		keySubnet, keyErr := subnet.ParseSubnetKey(name)
		_, valErr := subnet.ParseLeaseAttrs(value)
		if len(ls.Leases) == 1 {
			l := ls.Leases[0]
			if keyErr != nil || valErr != nil || l.Subnet != keySubnet || l.EtcdLease != 3 || l.ModRevision != 7 {
				t.Fatalf("lease %+v from key %q (%v) value %q (%v)", l, name, keyErr, value, valErr)
			}
		} else {
			bad := ls.Malformed[0]
			if !errors.Is(bad.Err, subnet.ErrInvalidLease) {
				t.Fatalf("malformed key's error %v does not wrap ErrInvalidLease", bad.Err)
			}
			if bad.Subnet.IsValid() != (keyErr == nil) || (keyErr == nil && bad.Subnet != keySubnet) {
				t.Fatalf("malformed key %q reports subnet %s, key parses as %s (%v)", name, bad.Subnet, keySubnet, keyErr)
			}
		}
		if keyErr == nil && m.newView([]*mvccpb.KeyValue{kv}).occupancy(keySubnet.Bits()).free(keySubnet) {
			t.Fatalf("subnet %s of key %q counted free", keySubnet, name)
		}
	})
}

// FuzzReadState feeds arbitrary bytes as the local state file: reading never panics, only accepts
// this node's state, and what it accepts survives a write and a read unchanged.
func FuzzReadState(f *testing.F) {
	f.Add([]byte(`{"NodeName":"n1","Prefix":"/weft/network","Subnet":"10.244.7.0/24","EtcdLease":7587899153806453775}`))
	f.Add([]byte(`{"NodeName":"n2","Prefix":"/weft/network","Subnet":"10.244.7.0/24","EtcdLease":1}`))
	f.Add([]byte(`{"NodeName":"n1","Prefix":"/weft/network","Subnet":"10.244.7.0/33","EtcdLease":1}`))
	f.Add([]byte(`{"NodeName":"n1","Prefix":"/weft/network","Subnet":"","EtcdLease":-1}`))
	f.Add([]byte(`{"NodeName":"n1","Prefix":"/weft/network","Subnet":"10.244.7.0/24","EtcdLease":1} {}`))
	f.Add([]byte(`{"NodeName":"n1","Prefix":"/weft/network","Subnet":"10.244.7.1/24","EtcdLease":1}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		m := offline(t, "n1", dir)
		if err := os.WriteFile(filepath.Join(dir, StateFileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		st := m.readState()
		if st == nil {
			return
		}
		if st.NodeName != "n1" || st.Prefix != DefaultPrefix || !st.Subnet.IsValid() || st.Subnet.Masked() != st.Subnet || st.EtcdLease < 0 {
			t.Fatalf("accepted state %+v", st)
		}
		if err := m.writeState(&subnet.Lease{Subnet: st.Subnet, EtcdLease: st.EtcdLease}); err != nil {
			t.Fatal(err)
		}
		if again := m.readState(); again == nil || *again != *st {
			t.Fatalf("state %+v read back as %+v", st, again)
		}
	})
}
