package subnet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// flannelDump is the shape of `etcdctl get --prefix -w json`.
type flannelDump struct {
	KVs []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
		Lease int64  `json:"lease"`
	} `json:"kvs"`
}

func loadFlannelDump(t *testing.T) map[string][]byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/flannel-etcd-dump.json")
	if err != nil {
		t.Fatal(err)
	}
	var d flannelDump
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, kv := range d.KVs {
		k, err := base64.StdEncoding.DecodeString(kv.Key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := base64.StdEncoding.DecodeString(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		out[string(k)] = v
	}
	return out
}

// TestFlannelValues reads the values flannel v0.28.9 wrote, exactly.
func TestFlannelValues(t *testing.T) {
	kvs := loadFlannelDump(t)
	cfg, err := ParseConfig(kvs["/coreos.com/network/config"])
	if err != nil {
		t.Fatalf("flannel config: %v", err)
	}
	if cfg.Network.String() != "10.244.0.0/16" || cfg.SubnetLen != 24 || cfg.Backend.VNI != 1 || cfg.Backend.Port != 8472 {
		t.Errorf("flannel config read as %+v", cfg)
	}
	want := map[string]string{
		"10.244.31.0/24": "198.51.100.1 vxlan vni=1 mac=16:5f:89:33:07:c4",
		"10.244.91.0/24": "198.51.100.2 vxlan vni=1 mac=46:11:2e:5e:cf:bf",
	}
	seen := 0
	for k, v := range kvs {
		rest, ok := strings.CutPrefix(k, "/coreos.com/network/subnets/")
		if !ok {
			continue
		}
		s, err := ParseSubnetKey(rest)
		if err != nil {
			t.Fatalf("key %s: %v", k, err)
		}
		a, err := ParseLeaseAttrs(v)
		if err != nil {
			t.Fatalf("value of %s: %v", k, err)
		}
		got := a.PublicIP.String() + " " + a.BackendType + " vni=" + strconv.Itoa(a.VNI) + " mac=" + a.VtepMAC.String()
		if got != want[s.String()] {
			t.Errorf("%s: got %q, want %q", s, got, want[s.String()])
		}
		if a.Format != 0 || a.NodeName != "" || a.GossipAddr.IsValid() {
			t.Errorf("%s: flannel value has weft fields: %+v", s, a)
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("read %d leases, want %d", seen, len(want))
	}
}

// flannelLeaseAttrs mirrors the types flannel decodes a lease value into (subnet.LeaseAttrs and the
// vxlan backend's vxlanLeaseAttrs, whose VNI is a uint16), non-strictly as flannel does.
type flannelLeaseAttrs struct {
	PublicIP    string
	PublicIPv6  *string
	BackendType string
	BackendData json.RawMessage
}

type flannelVXLANData struct {
	VNI     uint16
	VtepMAC string
}

func sampleAttrs() LeaseAttrs {
	return LeaseAttrs{
		PublicIP:    netip.MustParseAddr("198.51.100.3"),
		BackendType: BackendVXLAN,
		VNI:         1,
		VtepMAC:     net.HardwareAddr{0x0e, 0x77, 0x65, 0x66, 0x74, 0x01},
		Format:      LeaseFormat,
		NodeName:    "node-3",
		GossipAddr:  netip.MustParseAddrPort("198.51.100.3:7946"),
		AttrVersion: 1764096000000000000,
		AcquiredAt:  time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC),
	}
}

// TestWeftValueReadableByFlannel checks that weft's value keeps every field flannel needs, with
// flannel's types.
func TestWeftValueReadableByFlannel(t *testing.T) {
	a := sampleAttrs()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var f flannelLeaseAttrs
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("flannel cannot decode %s: %v", raw, err)
	}
	var d flannelVXLANData
	if err := json.Unmarshal(f.BackendData, &d); err != nil {
		t.Fatalf("flannel cannot decode BackendData %s: %v", f.BackendData, err)
	}
	if _, err := net.ParseMAC(d.VtepMAC); err != nil {
		t.Errorf("VtepMAC %q: %v", d.VtepMAC, err)
	}
	if f.PublicIP != "198.51.100.3" || f.PublicIPv6 != nil || f.BackendType != "vxlan" || d.VNI != 1 {
		t.Errorf("flannel reads %+v %+v", f, d)
	}
	if !strings.Contains(string(raw), `"PublicIPv6":null`) {
		t.Errorf("value lacks flannel's explicit PublicIPv6 null: %s", raw)
	}
	back, err := ParseLeaseAttrs(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(&a) {
		t.Errorf("round trip: %+v != %+v", back, a)
	}
}

func TestParseLeaseAttrsErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", `{`, "malformed JSON"},
		{"bad ip", `{"PublicIP":"1.2.3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`, `PublicIP="1.2.3"`},
		{"ipv6 underlay", `{"PublicIP":"::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`, `PublicIP="::1"`},
		{"host-gw node", `{"PublicIP":"198.51.100.1","BackendType":"host-gw","BackendData":null}`, "BackendData is missing"},
		{"udp node", `{"PublicIP":"198.51.100.1","BackendType":"udp","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`, `BackendType="udp"`},
		{"bad mac", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"zz"}}`, `BackendData.VtepMAC="zz"`},
		{"multicast mac", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"01:00:5e:00:00:01"}}`, `BackendData.VtepMAC="01:00:5e:00:00:01"`},
		{"zero mac", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"00:00:00:00:00:00"}}`, "BackendData.VtepMAC"},
		{"vni type", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":"1","VtepMAC":"16:5f:89:33:07:c4"}}`, "BackendData.VNI: got string"},
		{"vni zero", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":0,"VtepMAC":"16:5f:89:33:07:c4"}}`, "BackendData.VNI=0"},
		{"gossip addr", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"},"WeftGossipAddr":"x"}`, `WeftGossipAddr="x"`},
		{"node key not base64", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"},"WeftNodeKey":"*"}`, `WeftNodeKey="*": not base64`},
		{"node key short", `{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"},"WeftNodeKey":"AAAA"}`, `WeftNodeKey: 3 bytes, want an Ed25519 public key of 32`},
		{"ipv6 public", `{"PublicIP":"198.51.100.1","PublicIPv6":"fc00::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`, "PublicIPv6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseLeaseAttrs([]byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			if !errors.Is(err, ErrInvalidLease) {
				t.Errorf("%v does not wrap ErrInvalidLease", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseLeaseAttrsIgnoresUnknownFields(t *testing.T) {
	in := `{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4","Future":1},"BackendV6Data":null,"WeftFormat":2,"WeftSomethingNew":"x"}`
	a, err := ParseLeaseAttrs([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if a.Format != 2 {
		t.Errorf("Format = %d", a.Format)
	}
}

func TestSubnetKey(t *testing.T) {
	tests := []struct{ key, want, wantErr string }{
		{key: "10.244.7.0-24", want: "10.244.7.0/24"},
		{key: "10.244.7.0-24&fc00::-64", want: "10.244.7.0/24"},
		{key: "10.244.7.0", wantErr: "want <ip>-<prefix length>"},
		{key: "10.244.7.1-24", wantErr: "host bits set"},
		{key: "fc00::-64", wantErr: "not an IPv4 subnet"},
		{key: "10.244.7.0-33", wantErr: "not an IPv4 subnet"},
	}
	for _, tt := range tests {
		p, err := ParseSubnetKey(tt.key)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidLease) {
				t.Errorf("ParseSubnetKey(%q) error = %v, want %q", tt.key, err, tt.wantErr)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParseSubnetKey(%q) = %v, %v", tt.key, p, err)
			continue
		}
		if k := SubnetKey(p); !strings.HasPrefix(tt.key, k) {
			t.Errorf("SubnetKey(%s) = %q", p, k)
		}
	}
}

func TestReadLeaseIdentity(t *testing.T) {
	for _, tc := range []struct {
		value, node, ip, holder string
		pending, bad            bool
	}{
		{`{"PublicIP":"198.51.100.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"},"WeftNode":"n1"}`, "n1", "198.51.100.1", `node "n1"`, false, false},
		{`{"PublicIP":"198.51.100.2","WeftNode":"n2","WeftFormat":1}`, "n2", "198.51.100.2", `node "n2"`, true, false},
		{`{"PublicIP":"198.51.100.3","BackendData":{"VtepMAC":"02:00:00:00:00:03"}}`, "", "198.51.100.3", "a flannel node at 198.51.100.3", false, false},
		{`{"PublicIP":"198.51.100.4","WeftNode":7}`, "", "198.51.100.4", "a flannel node at 198.51.100.4", false, true},
		{`{"PublicIP":"not-an-ip","WeftNode":"n5"}`, "n5", "not-an-ip", `node "n5"`, false, false},
		{`x`, "", "", "an unknown holder", false, true},
	} {
		id, err := ReadLeaseIdentity([]byte(tc.value))
		if id.NodeName != tc.node || id.PublicIP != tc.ip || id.Holder() != tc.holder || id.Pending() != tc.pending ||
			(err != nil) != tc.bad || (err != nil && !errors.Is(err, ErrInvalidLease)) {
			t.Errorf("%s: %+v pending=%v holder=%q err=%v", tc.value, id, id.Pending(), id.Holder(), err)
		}
	}
}
