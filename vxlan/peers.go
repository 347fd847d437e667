package vxlan

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/weft-net/weft/backend"
)

// mac is a VTEP MAC as a comparable value.
type mac [6]byte

func (m mac) hw() net.HardwareAddr { return net.HardwareAddr(m[:]) }

func (m mac) String() string { return m.hw().String() }

// peerID names the peer a desired entry is for, for its errors.
type peerID struct {
	name   string
	subnet netip.Prefix
}

// fail wraps err as a failure of this peer alone.
func (id peerID) fail(err error) error {
	return &backend.PeerError{Peer: id.name, Subnet: id.subnet, Err: err}
}

// neighSpec is a desired permanent neighbour entry on the device: the peer subnet's network
// address resolves to the peer's VTEP MAC.
type neighSpec struct {
	peer peerID
	mac  mac
}

// fdbSpec is a desired FDB entry on the device: the VTEP MAC is reached at the peer's public IP.
type fdbSpec struct {
	peer peerID
	dst  netip.Addr
}

// routeSpec is a desired route to a peer subnet: via gw on the device (onlink), or, when direct,
// via the peer's public IP on the underlay link.
type routeSpec struct {
	peer   peerID
	gw     netip.Addr
	direct bool
}

// desired is the kernel state the valid peers ask for. It is immutable once built, so the event
// filter may read it without locks.
type desired struct {
	neigh  map[netip.Addr]neighSpec
	fdb    map[mac]fdbSpec
	routes map[netip.Prefix]routeSpec
}

// peerError is the *backend.PeerError of an invalid peer: it wraps backend.ErrInvalidPeer and says
// the problem.
func peerError(p backend.Peer, format string, args ...any) error {
	return peerID{p.Name, p.Subnet}.fail(fmt.Errorf("%w: %s", backend.ErrInvalidPeer, fmt.Sprintf(format, args...)))
}

// buildDesired validates peers and returns the desired state of the valid ones plus one error per
// invalid peer. Peers conflicting with each other (overlapping subnets, shared VTEP MAC) are all
// rejected, so the outcome does not depend on the order of the input.
func (b *Backend) buildDesired(peers []backend.Peer) (*desired, []error) {
	var errs []error
	cands := make([]candidate, 0, len(peers))
	for _, p := range peers {
		c, err := b.checkPeer(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cands = append(cands, candidate{peer: p, public: c.public, mac: c.mac})
	}

	// Overlapping subnets: prefixes are either nested or disjoint, so after sorting by start
	// address every prefix that overlaps an earlier one starts inside the earlier prefix that
	// reaches furthest.
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := a.peer.Subnet.Addr().Compare(b.peer.Subnet.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.peer.Subnet.Bits(), b.peer.Subnet.Bits())
	})
	reach := -1
	for i := range cands {
		if reach >= 0 && cands[reach].peer.Subnet.Overlaps(cands[i].peer.Subnet) {
			r := &cands[reach]
			cands[i].reject(fmt.Sprintf("Subnet overlaps peer %q (subnet %s)", r.peer.Name, r.peer.Subnet))
			r.reject(fmt.Sprintf("Subnet overlaps peer %q (subnet %s)", cands[i].peer.Name, cands[i].peer.Subnet))
		}
		if reach < 0 || lastAddr(cands[i].peer.Subnet).Compare(lastAddr(cands[reach].peer.Subnet)) > 0 {
			reach = i
		}
	}

	byMAC := make(map[mac]int, len(cands))
	for i := range cands {
		j, dup := byMAC[cands[i].mac]
		if !dup {
			byMAC[cands[i].mac] = i
			continue
		}
		if cands[j].public != cands[i].public {
			cands[i].reject(fmt.Sprintf("VtepMAC %s is also used by peer %q at %s", cands[i].mac, cands[j].peer.Name, cands[j].public))
			cands[j].reject(fmt.Sprintf("VtepMAC %s is also used by peer %q at %s", cands[j].mac, cands[i].peer.Name, cands[i].public))
		}
	}

	d := &desired{
		neigh:  make(map[netip.Addr]neighSpec, len(cands)),
		fdb:    make(map[mac]fdbSpec, len(cands)),
		routes: make(map[netip.Prefix]routeSpec, len(cands)),
	}
	for _, c := range cands {
		if c.conflict != "" {
			errs = append(errs, peerError(c.peer, "%s", c.conflict))
			continue
		}
		name := peerID{c.peer.Name, c.peer.Subnet}
		if b.cfg.DirectRouting && b.underlay.Net.Contains(c.public) {
			d.routes[c.peer.Subnet] = routeSpec{peer: name, gw: c.public, direct: true}
			continue
		}
		gw := c.peer.Subnet.Addr()
		d.neigh[gw] = neighSpec{peer: name, mac: c.mac}
		d.fdb[c.mac] = fdbSpec{peer: name, dst: c.public}
		d.routes[c.peer.Subnet] = routeSpec{peer: name, gw: gw}
	}
	return d, errs
}

// candidate is a peer that passed checkPeer, awaiting the checks against the other peers.
type candidate struct {
	peer   backend.Peer
	public netip.Addr
	mac    mac
	// conflict names the first problem found with other peers; empty if none.
	conflict string
}

func (c *candidate) reject(why string) {
	if c.conflict == "" {
		c.conflict = why
	}
}

type checkedPeer struct {
	public netip.Addr
	mac    mac
}

// checkPeer validates one peer on its own.
func (b *Backend) checkPeer(p backend.Peer) (checkedPeer, error) {
	var c checkedPeer
	switch s := p.Subnet; {
	case !s.IsValid():
		return c, peerError(p, "Subnet is missing or invalid")
	case !s.Addr().Is4():
		return c, peerError(p, "Subnet %s is not IPv4", s)
	case s != s.Masked():
		return c, peerError(p, "Subnet %s has host bits set", s)
	case s.Overlaps(b.cfg.Subnet):
		return c, peerError(p, "Subnet %s overlaps this node's subnet %s", s, b.cfg.Subnet)
	}
	if !p.PublicIP.IsValid() {
		return c, peerError(p, "PublicIP is missing")
	}
	c.public = p.PublicIP.Unmap()
	if err := validUnicast4(c.public); err != nil {
		return c, peerError(p, "PublicIP: %v", err)
	}
	if c.public == b.underlay.IP {
		return c, peerError(p, "PublicIP %s is this node's own address", c.public)
	}
	if err := validVtepMAC(p.VtepMAC); err != nil {
		return c, peerError(p, "VtepMAC: %v", err)
	}
	copy(c.mac[:], p.VtepMAC)
	if c.mac == b.mac {
		return c, peerError(p, "VtepMAC %s is this node's own", c.mac)
	}
	return c, nil
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
