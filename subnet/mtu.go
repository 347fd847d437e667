package subnet

import "fmt"

// MTU facts, defined here once: the CNI plugin, weftd, the VXLAN backend and weftctl all use them.
const (
	// MinMTUIPv4 is the smallest MTU an IPv4 host must accept (RFC 791), and the smallest weft
	// gives pods.
	MinMTUIPv4 = 576
	// MinMTUIPv6 is IPv6's minimum link MTU (RFC 8200).
	MinMTUIPv6 = 1280
	// IPMaxMTU is the largest IP packet (IP_MAX_MTU), and so the largest underlay MTU that counts.
	IPMaxMTU = 65535
	// VXLANOverheadIPv4 is what VXLAN over an IPv4 underlay adds to every frame: outer IPv4 (20),
	// UDP (8), VXLAN (8) and the inner Ethernet header (14).
	VXLANOverheadIPv4 = 50
	// VXLANOverheadIPv6 is the same over an IPv6 underlay: the outer header is 40 bytes.
	VXLANOverheadIPv6 = 70
	// MaxMTU is the largest MTU weft programs on its device, bridge and pods: the kernel's VXLAN
	// driver accepts at most IP_MAX_MTU minus the IPv4 overhead.
	MaxMTU = IPMaxMTU - VXLANOverheadIPv4
)

// CheckMTU checks a pod or device MTU for an IPv4 pod network: MinMTUIPv4 to MaxMTU. The error
// says the range, for the caller to prefix with the field's name.
func CheckMTU(mtu int) error {
	if mtu < MinMTUIPv4 || mtu > MaxMTU {
		return fmt.Errorf("%d: must be between %d and %d", mtu, MinMTUIPv4, MaxMTU)
	}
	return nil
}
