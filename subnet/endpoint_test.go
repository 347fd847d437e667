package subnet

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckPublicIP(t *testing.T) {
	tests := []struct {
		ip   string // empty: the zero Addr
		want string // "" accepts
	}{
		{"192.0.2.1", ""}, {"198.51.100.7", ""}, {"203.0.113.9", ""}, {"198.18.0.1", ""}, {"198.19.255.254", ""},
		{"10.1.2.3", ""}, {"172.16.0.1", ""}, {"100.64.0.1", ""}, {"8.8.8.8", ""}, {"223.255.255.254", ""},
		{"", "no address"},
		{"2001:db8::1", "not IPv4"},
		{"::ffff:192.0.2.1", "not IPv4"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "0.0.0.0/8"},
		{"127.0.0.1", "loopback"}, {"127.255.0.9", "loopback"},
		{"169.254.0.1", "link-local"}, {"169.254.255.254", "link-local"},
		{"224.0.0.1", "multicast"}, {"239.255.255.255", "multicast"},
		{"255.255.255.255", "limited broadcast"},
		{"240.0.0.1", "240.0.0.0/4"}, {"254.1.2.3", "240.0.0.0/4"},
	}
	for _, tt := range tests {
		var a netip.Addr
		if tt.ip != "" {
			a = netip.MustParseAddr(tt.ip)
		}
		err := CheckPublicIP(a)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckPublicIP(%s) = %v, want nil", tt.ip, err)
		case tt.want != "" && (!errors.Is(err, ErrNotEndpoint) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckPublicIP(%s) = %v, want ErrNotEndpoint mentioning %q", tt.ip, err, tt.want)
		}
	}
}

func TestCheckVtepMAC(t *testing.T) {
	tests := []struct{ mac, want string }{
		{"02:aa:00:00:00:01", ""}, {"5a:41:0c:7e:22:9b", ""},
		{"00:00:00:00:00:00", "zero MAC"},
		{"01:00:5e:00:00:01", "multicast or broadcast"},
		{"ff:ff:ff:ff:ff:ff", "multicast or broadcast"},
		{"02:00:00:00:00:00:00:01", "not a 6-byte MAC"},
		{"", "not a 6-byte MAC"},
	}
	for _, tt := range tests {
		var hw net.HardwareAddr
		if tt.mac != "" {
			hw, _ = net.ParseMAC(tt.mac)
		}
		err := CheckVtepMAC(hw)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckVtepMAC(%s) = %v, want nil", tt.mac, err)
		case tt.want != "" && (!errors.Is(err, ErrNotEndpoint) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckVtepMAC(%s) = %v, want ErrNotEndpoint mentioning %q", tt.mac, err, tt.want)
		}
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{
		"192.0.2.0/24": "192.0.2.255", "192.0.2.64/26": "192.0.2.127", "10.0.0.0/8": "10.255.255.255",
		"10.244.3.1/24": "10.244.3.255", "192.0.2.7/32": "192.0.2.7", "0.0.0.0/0": "255.255.255.255",
		"172.16.0.0/12": "172.31.255.255",
	} {
		if got := LastAddr(netip.MustParsePrefix(p)); got.String() != want {
			t.Errorf("LastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}
