package backend

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestCheckEndpoint is the table of a peer's endpoint rules, against node 192.0.2.1/24 with the
// secondary addresses 192.0.2.65/26 and 198.18.0.1/31 on its underlay, 10.0.0.5 on another link,
// in pod network 10.244.0.0/16, with VTEP MAC 02:ee:00:00:00:01.
func TestCheckEndpoint(t *testing.T) {
	local := Local{
		PodNetwork: netip.MustParsePrefix("10.244.0.0/16"),
		Underlay: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.65/26"), netip.MustParsePrefix("198.18.0.1/31"),
		},
		Addrs: []netip.Addr{
			netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.65"), netip.MustParseAddr("198.18.0.1"),
			netip.MustParseAddr("10.0.0.5"),
		},
		VtepMAC: net.HardwareAddr{2, 0xee, 0, 0, 0, 1},
	}
	tests := []struct {
		ip, mac string
		reason  Reason // "" accepts
		problem string
	}{
		{"192.0.2.2", "02:aa:00:00:00:02", "", ""},
		{"198.51.100.9", "02:aa:00:00:00:02", "", ""},
		{"203.0.113.9", "02:aa:00:00:00:02", "", ""},
		{"198.18.0.0", "02:aa:00:00:00:02", "", ""}, // the other end of a /31
		{"192.0.2.64", "02:aa:00:00:00:02", ReasonPublicIP, "network address of the underlay prefix 192.0.2.64/26"},
		{"192.0.2.127", "02:aa:00:00:00:02", ReasonPublicIP, "broadcast address of the underlay prefix 192.0.2.64/26"},
		{"192.0.2.255", "02:aa:00:00:00:02", ReasonPublicIP, "broadcast address of the underlay prefix 192.0.2.0/24"},
		{"192.0.2.0", "02:aa:00:00:00:02", ReasonPublicIP, "network address of the underlay prefix 192.0.2.0/24"},
		{"10.244.7.3", "02:aa:00:00:00:02", ReasonPublicIP, "inside the pod network"},
		{"10.244.7.0", "02:aa:00:00:00:02", ReasonPublicIP, "inside the pod network"},
		{"192.0.2.1", "02:aa:00:00:00:02", ReasonLocalAddr, "own address"},
		{"192.0.2.65", "02:aa:00:00:00:02", ReasonLocalAddr, "own address"},
		{"10.0.0.5", "02:aa:00:00:00:02", ReasonLocalAddr, "own address"},
		{"::ffff:192.0.2.1", "02:aa:00:00:00:02", ReasonLocalAddr, "own address"},
		{"169.254.1.1", "02:aa:00:00:00:02", ReasonInvalid, "link-local"},
		{"0.0.0.1", "02:aa:00:00:00:02", ReasonInvalid, "0.0.0.0/8"},
		{"240.0.0.1", "02:aa:00:00:00:02", ReasonInvalid, "240.0.0.0/4"},
		{"255.255.255.255", "02:aa:00:00:00:02", ReasonInvalid, "limited broadcast"},
		{"192.0.2.2", "02:ee:00:00:00:01", ReasonOwnMAC, "this node's own"},
		{"192.0.2.2", "00:00:00:00:00:00", ReasonInvalid, "zero MAC"},
		{"192.0.2.2", "33:33:00:00:00:01", ReasonInvalid, "multicast"},
	}
	for _, tt := range tests {
		hw, _ := net.ParseMAC(tt.mac)
		p := Peer{Name: "x", Subnet: netip.MustParsePrefix("10.245.3.0/24"), PublicIP: netip.MustParseAddr(tt.ip), VtepMAC: hw}
		err := local.CheckEndpoint(p)
		var pe *PeerError
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("%s %s: %v, want accepted", tt.ip, tt.mac, err)
		case tt.reason == "":
		case !errors.As(err, &pe) || pe.Reason != tt.reason || pe.Peer != "x" || !errors.Is(err, ErrInvalidPeer) ||
			!pe.Isolated() || !strings.Contains(err.Error(), tt.problem):
			t.Errorf("%s %s: %v, want the peer's ErrInvalidPeer, reason %s, mentioning %q", tt.ip, tt.mac, err, tt.reason, tt.problem)
		}
	}
	// With no local facts, only the classes are checked.
	var none Local
	if err := none.CheckEndpoint(Peer{PublicIP: netip.MustParseAddr("10.244.7.3"), VtepMAC: local.VtepMAC}); err != nil {
		t.Errorf("zero Local: %v, want accepted", err)
	}
}
