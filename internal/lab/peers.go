package lab

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/vxlan"
)

// Device is the VXLAN device of the lab's weftd: the one of the network config's default VNI.
var Device = vxlan.DeviceName(subnet.DefaultVNI)

// Owned reads weft's entries in node's kernel, through the VXLAN backend's own reader and
// ownership rule.
func (l *Lab) Owned(node *Node) (vxlan.Ownership, *vxlan.Owned, error) {
	var (
		o     vxlan.Ownership
		owned vxlan.Owned
	)
	err := l.WithHandle(node, func(h *netlink.Handle) error {
		var err error
		if o, err = vxlan.OwnershipOf(h, Device, vxlan.DefaultRouteProtocol); err != nil {
			return err
		}
		owned, err = o.Dump(h)
		return err
	})
	return o, &owned, err
}

// CheckPeer returns nil when node's kernel holds exactly what weftd programs for want: the route
// via the peer's VTEP address, the neighbour entry with its VTEP MAC and the FDB entry sending that
// MAC to its public IP. Otherwise the error says what differs.
func (l *Lab) CheckPeer(node *Node, want backend.Peer) error {
	o, owned, err := l.Owned(node)
	if err != nil {
		return fmt.Errorf("%s's entries for %s: %w", node.Name, want.Subnet, err)
	}
	if bad := owned.Problems(o, want); len(bad) > 0 {
		return fmt.Errorf("%s's entries for %s: %s", node.Name, want.Subnet, strings.Join(bad, "; "))
	}
	return nil
}

// PeerOf is what the lab's other nodes must program for node: its subnet (from its subnet.env),
// its underlay address and the VTEP MAC its device carries.
func (l *Lab) PeerOf(node *Node) (backend.Peer, error) {
	e, err := l.Env(node)
	if err != nil {
		return backend.Peer{}, err
	}
	mac, err := l.VTEPMAC(node)
	if err != nil {
		return backend.Peer{}, err
	}
	return backend.Peer{Name: node.Name, Subnet: e.Subnet, PublicIP: node.IP, VtepMAC: mac}, nil
}

// CheckPeerNode is CheckPeer for the lab's node peer as it stands now (PeerOf).
func (l *Lab) CheckPeerNode(node, peer *Node) error {
	want, err := l.PeerOf(peer)
	if err != nil {
		return err
	}
	return l.CheckPeer(node, want)
}
