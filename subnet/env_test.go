package subnet

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// flannelEnv is the subnet.env flannel v0.28.9 wrote on node 1 of the compatibility fixture.
const flannelEnv = `FLANNEL_NETWORK=10.244.0.0/16
FLANNEL_SUBNET=10.244.31.1/24
FLANNEL_MTU=1450
FLANNEL_IPMASQ=true
`

func TestParseFlannelEnv(t *testing.T) {
	e, err := ParseEnv([]byte(flannelEnv))
	if err != nil {
		t.Fatal(err)
	}
	if e.Network.String() != "10.244.0.0/16" || e.Subnet.String() != "10.244.31.0/24" || e.MTU != 1450 || !e.IPMasq || e.Ready {
		t.Errorf("parsed %+v", e)
	}
	if g := e.Gateway().String(); g != "10.244.31.1" {
		t.Errorf("Gateway = %s", g)
	}
	want := flannelEnv + "WEFT_READY=false\n"
	if got := string(e.Marshal()); got != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseEnvErrors(t *testing.T) {
	base := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.31.1/24\nFLANNEL_MTU=1450\n"
	tests := []struct{ name, in, want string }{
		{"empty", "", "FLANNEL_NETWORK is missing"},
		{"no mtu", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.31.1/24\n", "FLANNEL_MTU is missing"},
		{"not kv", base + "garbage\n", `line 4: "garbage" is not KEY=VALUE`},
		{"bad mtu", strings.Replace(base, "1450", "big", 1), `FLANNEL_MTU="big"`},
		{"mtu range", strings.Replace(base, "1450", "100", 1), "FLANNEL_MTU=100"},
		{"bad bool", base + "WEFT_READY=maybe\n", `WEFT_READY="maybe"`},
		{"dup", base + "FLANNEL_MTU=1450\n", "FLANNEL_MTU given twice"},
		{"subnet outside", strings.Replace(base, "10.244.31.1/24", "10.9.31.1/24", 1), "is not inside FLANNEL_NETWORK"},
		{"network host bits", strings.Replace(base, "10.244.0.0/16", "10.244.0.1/16", 1), "host bits set"},
		{"v6", strings.Replace(base, "10.244.0.0/16", "fc00::/48", 1), "FLANNEL_NETWORK: missing or not an IPv4 prefix"},
		{"tiny subnet", strings.Replace(base, "10.244.31.1/24", "10.244.31.1/31", 1), "must be /30 or larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEnv([]byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %+v", e)
			}
			if !errors.Is(err, ErrInvalidEnv) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want ErrInvalidEnv containing %q", err, tt.want)
			}
		})
	}
}

func TestParseEnvTolerant(t *testing.T) {
	in := "# written by weftd\n\n" + flannelEnv + "FLANNEL_IPV6_NETWORK=fc00::/48\nWEFT_READY=true\nWEFT_FUTURE=1\n"
	e, err := ParseEnv([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Ready {
		t.Error("WEFT_READY=true not read")
	}
}

func TestEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "weft", "subnet.env")
	if _, err := ReadEnvFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	e, err := ParseEnv([]byte(flannelEnv))
	if err != nil {
		t.Fatal(err)
	}
	e.Ready = true
	if err := WriteEnvFile(path, e); err != nil {
		t.Fatal(err)
	}
	got, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *e {
		t.Errorf("read back %+v, want %+v", got, e)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	e.MTU = 1
	if err := WriteEnvFile(path, e); err == nil {
		t.Error("wrote an invalid env")
	}
	if again, err := ReadEnvFile(path); err != nil || again.MTU != 1450 {
		t.Errorf("invalid write disturbed the file: %+v, %v", again, err)
	}
}

// TestEnvMTUBounds: subnet.env takes every MTU the VXLAN device can have, jumbo underlays
// included (a 9216 underlay gives 9166), and refuses what no device carries.
func TestEnvMTUBounds(t *testing.T) {
	for _, tt := range []struct {
		mtu int
		ok  bool
	}{{575, false}, {576, true}, {1450, true}, {9166, true}, {MaxMTU, true}, {MaxMTU + 1, false}} {
		e := Env{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.31.0/24"), MTU: tt.mtu}
		if err := e.Validate(); (err == nil) != tt.ok {
			t.Errorf("MTU %d: Validate = %v, want ok=%t", tt.mtu, err, tt.ok)
		}
	}
}

func TestEnvLeaseExpiry(t *testing.T) {
	at := time.Date(2026, 12, 3, 11, 48, 37, 0, time.UTC)
	e := Env{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.31.0/24"), MTU: 1450, Ready: true, LeaseExpiry: at}
	data := e.Marshal()
	if !strings.HasSuffix(string(data), "WEFT_READY=true\nWEFT_LEASE_EXPIRY=2026-12-03T11:48:37Z\n") {
		t.Fatalf("marshalled:\n%s", data)
	}
	back, err := ParseEnv(data)
	if err != nil || !back.Equal(&e) {
		t.Fatalf("parsed back %+v, %v; want %+v", back, err, e)
	}
	if e.Expired(at.Add(-time.Second)) || !e.Expired(at) {
		t.Error("Expired is wrong around the expiry")
	}
	e.LeaseExpiry = time.Time{}
	if e.Expired(at) || strings.Contains(string(e.Marshal()), EnvExpiry) {
		t.Error("a lease without expiry expires, or is written with one")
	}
	if _, err := ParseEnv(append(data, "WEFT_LEASE_EXPIRY=tomorrow\n"...)); err == nil {
		t.Error("a bad or repeated WEFT_LEASE_EXPIRY parsed")
	}
}
