package subnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrNotEndpoint marks an address or MAC that can never be a VXLAN tunnel endpoint, whatever the
// node: CheckPublicIP's and CheckVtepMAC's errors wrap it.
var ErrNotEndpoint = errors.New("not a tunnel endpoint")

// CheckPublicIP checks that a can be a VXLAN tunnel endpoint on any node: a unicast IPv4 address
// outside the ranges that never name a remote host (0/8, loopback, link-local, multicast, 240/4
// with the limited broadcast). The documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24)
// and 198.18/15 are allowed: labs use them. What depends on the node (its own addresses, its
// underlay's broadcast, the pod network) backend.Local checks.
func CheckPublicIP(a netip.Addr) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s is %s", ErrNotEndpoint, a, what) }
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: no address", ErrNotEndpoint)
	case !a.Is4():
		return bad("not IPv4")
	case a.IsUnspecified():
		return bad("unspecified")
	case a.As4()[0] == 0:
		return bad("in 0.0.0.0/8 (this network)")
	case a.IsLoopback():
		return bad("loopback")
	case a.IsLinkLocalUnicast():
		return bad("link-local")
	case a.IsMulticast():
		return bad("multicast")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return bad("the limited broadcast address")
	case a.As4()[0] >= 240:
		return bad("in 240.0.0.0/4 (reserved)")
	}
	return nil
}

// CheckVtepMAC checks that mac can be a VXLAN device's address: 6 bytes, unicast, not zero.
func CheckVtepMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("%w: %q is not a 6-byte MAC", ErrNotEndpoint, mac.String())
	case mac[0]&0x01 != 0:
		return fmt.Errorf("%w: %s is a multicast or broadcast MAC", ErrNotEndpoint, mac)
	case mac[0]|mac[1]|mac[2]|mac[3]|mac[4]|mac[5] == 0:
		return fmt.Errorf("%w: %s is the zero MAC", ErrNotEndpoint, mac)
	}
	return nil
}

// LastAddr is the highest address of the IPv4 prefix p: its broadcast address when p is a link's.
func LastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	for i := range a {
		if bits := p.Bits() - 8*i; bits < 8 {
			a[i] |= byte(0xff >> max(bits, 0))
		}
	}
	return netip.AddrFrom4(a)
}
