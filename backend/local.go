package backend

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/weft-net/weft/subnet"
)

// Reason says why a peer is left out: the reason label of weftd's weft_peers_rejected metric and
// the reason /debug/peers shows.
type Reason string

// Rejection reasons.
const (
	// ReasonInvalid: the peer's data do not validate on their own (subnet, address or MAC class,
	// a lease value that does not parse).
	ReasonInvalid Reason = "invalid"
	// ReasonPublicIP: the PublicIP cannot be a tunnel endpoint from this node: it is the network or
	// broadcast address of an underlay prefix, or inside the pod network.
	ReasonPublicIP Reason = "public-ip"
	// ReasonLocalAddr: the PublicIP is one of this node's addresses.
	ReasonLocalAddr Reason = "local-address"
	// ReasonOwnMAC: the VtepMAC is this node's.
	ReasonOwnMAC Reason = "own-vtep-mac"
	// ReasonSubnet: the subnet overlaps this node's or another peer's, or is not one the network
	// config hands out.
	ReasonSubnet Reason = "subnet"
	// ReasonSharedMAC: an older peer at another PublicIP has the same VtepMAC.
	ReasonSharedMAC Reason = "shared-vtep-mac"
	// ReasonDuplicate: an older lease holds the same subnet.
	ReasonDuplicate Reason = "duplicate-subnet"
	// ReasonKernel: the kernel refused the peer's entries as invalid (ErrRefusedPeer).
	ReasonKernel Reason = "kernel-refused"
)

// Reasons lists every reason, in a fixed order.
func Reasons() []Reason {
	return []Reason{
		ReasonInvalid, ReasonPublicIP, ReasonLocalAddr, ReasonOwnMAC, ReasonSubnet, ReasonSharedMAC,
		ReasonDuplicate, ReasonKernel,
	}
}

// Local is what this node knows of itself to judge a peer's tunnel endpoint. A zero field checks
// nothing.
type Local struct {
	// PodNetwork is the cluster's pod network: no tunnel endpoint is inside it.
	PodNetwork netip.Prefix
	// Underlay holds the prefixes of the underlay link's IPv4 addresses: their network and
	// directed-broadcast addresses are not endpoints (the kernel refuses a route via them).
	Underlay []netip.Prefix
	// Addrs is every address of this node, secondary ones included.
	Addrs []netip.Addr
	// VtepMAC is this node's VXLAN device MAC.
	VtepMAC net.HardwareAddr
}

// CheckEndpoint checks p's PublicIP and VtepMAC: first as any node would (subnet.CheckPublicIP,
// subnet.CheckVtepMAC), then against this node. It returns nil or the *PeerError, wrapping
// ErrInvalidPeer, with the Reason.
func (l *Local) CheckEndpoint(p Peer) error {
	ip := p.PublicIP.Unmap()
	fail := func(r Reason, format string, args ...any) error {
		return &PeerError{Peer: p.Name, Subnet: p.Subnet, Reason: r,
			Err: fmt.Errorf("%w: %s", ErrInvalidPeer, fmt.Sprintf(format, args...))}
	}
	if err := subnet.CheckPublicIP(ip); err != nil {
		return fail(ReasonInvalid, "PublicIP: %v", err)
	}
	if err := subnet.CheckVtepMAC(p.VtepMAC); err != nil {
		return fail(ReasonInvalid, "VtepMAC: %v", err)
	}
	for _, a := range l.Addrs {
		if a.Unmap() == ip {
			return fail(ReasonLocalAddr, "PublicIP %s is this node's own address", ip)
		}
	}
	if l.PodNetwork.IsValid() && l.PodNetwork.Contains(ip) {
		return fail(ReasonPublicIP, "PublicIP %s is inside the pod network %s", ip, l.PodNetwork)
	}
	for _, u := range l.Underlay {
		switch {
		case !u.Addr().Is4() || u.Bits() > 30:
			// A /31 or /32 has no network or broadcast address (RFC 3021).
		case ip == u.Masked().Addr():
			return fail(ReasonPublicIP, "PublicIP %s is the network address of the underlay prefix %s", ip, u.Masked())
		case ip == subnet.LastAddr(u):
			return fail(ReasonPublicIP, "PublicIP %s is the broadcast address of the underlay prefix %s", ip, u.Masked())
		}
	}
	if len(l.VtepMAC) > 0 && bytes.Equal(p.VtepMAC, l.VtepMAC) {
		return fail(ReasonOwnMAC, "VtepMAC %s is this node's own", p.VtepMAC)
	}
	return nil
}
