package subnet

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConfigDefaults(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "flannel fixture",
			in:   `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}`,
			want: `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}`,
		},
		{
			name: "stock kubernetes net-conf",
			in:   `{"Network":"10.244.0.0/16","EnableNFTables":false,"Backend":{"Type":"vxlan"}}`,
			want: `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}`,
		},
		{
			name: "flannel min max vni port",
			in:   `{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.99.0.0","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}`,
			want: `{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.99.0.0","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}`,
		},
		{
			name: "no backend defaults to vxlan",
			in:   `{"Network":"10.244.0.0/16"}`,
			want: `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}`,
		},
		{
			name: "slash 22 gets /24",
			in:   `{"Network":"10.244.0.0/22"}`,
			want: `{"Network":"10.244.0.0/22","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.3.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}`,
		},
		{
			name: "slash 23 gets prefix plus 2",
			in:   `{"Network":"10.244.0.0/23"}`,
			want: `{"Network":"10.244.0.0/23","SubnetLen":25,"SubnetMin":"10.244.0.128","SubnetMax":"10.244.1.128","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}`,
		},
		{
			name: "case-insensitive flannel names and backend options",
			in:   `{"network":"10.244.0.0/16","subnetlen":26,"enableipv4":true,"backend":{"type":"vxlan","mtu":1400,"directrouting":true,"gbp":true,"learning":true}}`,
			want: `{"Network":"10.244.0.0/16","SubnetLen":26,"SubnetMin":"10.244.0.64","SubnetMax":"10.244.255.192","Backend":{"Type":"vxlan","VNI":1,"Port":8472,"MTU":1400,"DirectRouting":true,"GBP":true,"Learning":true}}`,
		},
		{
			name: "flannel IPv6 off",
			in:   `{"Network":"10.244.0.0/16","EnableIPv6":false,"Backend":{"Type":"vxlan"}}`,
			want: `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			got, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			again, err := ParseConfig(got)
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if *again != *c {
				t.Errorf("round trip changed the config: %+v != %+v", again, c)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, in    string
		wantErr     string
		unsupported bool
	}{
		{"empty", ``, "empty document", false},
		{"not an object", `[1]`, "not a JSON object", false},
		{"syntax", `{"Network":`, "malformed JSON", false},
		{"trailing", `{"Network":"10.244.0.0/16"} {}`, "trailing data", false},
		{"misspelled", `{"Netwrok":"10.244.0.0/16"}`, `unknown field Netwrok`, false},
		{"unknown backend field", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VIN":3}}`, "unknown field Backend.VIN", false},
		{"backend type mismatch", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":"3"}}`, "Backend.VNI: got string, want number", false},
		{"top-level type mismatch", `{"Network":"10.244.0.0/16","SubnetLen":"24"}`, "SubnetLen: got string, want number", false},
		{"missing network", `{"Backend":{"Type":"vxlan"}}`, "Network is missing", false},
		{"bad network", `{"Network":"10.244.0.0"}`, `Network="10.244.0.0": not a CIDR prefix`, false},
		{"host bits", `{"Network":"10.244.1.0/16"}`, "did you mean 10.244.0.0/16", false},
		{"ipv6 network", `{"Network":"fc00::/48"}`, "Network=fc00::/48", true},
		{"too small network", `{"Network":"10.244.0.0/29"}`, "prefix length must be between", false},
		{"subnetlen too short", `{"Network":"10.244.0.0/16","SubnetLen":16}`, "SubnetLen=16", false},
		{"subnetlen too long", `{"Network":"10.244.0.0/16","SubnetLen":31}`, "SubnetLen=31", false},
		{"subnetmin outside", `{"Network":"10.244.0.0/16","SubnetMin":"10.245.0.0"}`, "SubnetMin=10.245.0.0: not inside", false},
		{"subnetmax unaligned", `{"Network":"10.244.0.0/16","SubnetMax":"10.244.9.5"}`, "SubnetMax=10.244.9.5: not on a /24 subnet boundary", false},
		{"subnetmin not an ip", `{"Network":"10.244.0.0/16","SubnetMin":"ten"}`, `SubnetMin="ten": not an IP address`, false},
		{"min above max", `{"Network":"10.244.0.0/16","SubnetMin":"10.244.9.0","SubnetMax":"10.244.3.0"}`, "SubnetMin=10.244.9.0 is above SubnetMax=10.244.3.0", false},
		{"vni zero ok but too big", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`, "Backend.VNI=16777216", false},
		{"negative vni", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":-1}}`, "Backend.VNI=-1", false},
		{"port too big", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":65536}}`, "Backend.Port=65536", false},
		{"mtu too small", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":100}}`, "Backend.MTU=100", false},
		{"other backend", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`, `Backend.Type="host-gw"`, true},
		{"ipv6 enabled", `{"Network":"10.244.0.0/16","EnableIPv6":true}`, "EnableIPv6=true", true},
		{"ipv4 disabled", `{"Network":"10.244.0.0/16","EnableIPv4":false}`, "EnableIPv4=false", true},
		{"nftables", `{"Network":"10.244.0.0/16","EnableNFTables":true}`, "EnableNFTables=true", true},
		{"ipv6 network given", `{"Network":"10.244.0.0/16","IPv6Network":"fc00::/48"}`, "IPv6Network", true},
		{"mac prefix", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MacPrefix":"0E:2A"}}`, "Backend.MacPrefix", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseConfig accepted it: %+v", c)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %v, want %v (%v)", got, tt.unsupported, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateFlannelShared(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateFlannelShared(); err == nil || !strings.Contains(err.Error(), "Backend.VNI=70000") {
		t.Errorf("VNI 70000 on a flannel-shared prefix: got %v", err)
	}
	c.Backend.VNI = 65535
	if err := c.ValidateFlannelShared(); err != nil {
		t.Errorf("VNI 65535: %v", err)
	}
}

func TestSubnetEnumeration(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","SubnetLen":24}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.SubnetCount(); n != 255 {
		t.Fatalf("SubnetCount = %d, want 255", n)
	}
	if got := c.SubnetAt(0).String(); got != "10.244.1.0/24" {
		t.Errorf("SubnetAt(0) = %s", got)
	}
	if got := c.SubnetAt(254).String(); got != "10.244.255.0/24" {
		t.Errorf("SubnetAt(254) = %s", got)
	}
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"10.244.0.0/24", false},
		{"10.244.1.0/24", true},
		{"10.244.255.0/24", true},
		{"10.244.7.0/25", false},
		{"10.245.7.0/24", false},
	} {
		if got := c.Allocatable(mustPrefix(t, tt.s)); got != tt.want {
			t.Errorf("Allocatable(%s) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestParseConfigLenient(t *testing.T) {
	data := []byte(`{"Network":"10.244.0.0/16","FutureKnob":3,"Backend":{"Type":"vxlan","VNI":7,"Turbo":true}}`)
	if _, err := ParseConfig(data); err == nil || !strings.Contains(err.Error(), "unknown field FutureKnob") {
		t.Errorf("strict parse: err = %v, want one naming FutureKnob", err)
	}
	c, unknown, err := ParseConfigLenient(data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(unknown, ",") != "Backend.Turbo,FutureKnob" || c.Backend.VNI != 7 || c.Network.String() != "10.244.0.0/16" {
		t.Errorf("lenient parse: %+v, unknown %q", c, unknown)
	}
	if _, _, err := ParseConfigLenient([]byte(`{"Network":"10.244.0.0/16","Extra":1,"Backend":{"Type":"udp"}}`)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("lenient parse of an invalid config: err = %v", err)
	}
}
