package vxlan

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/subnet"
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

// fail wraps err, a kernel failure on one of this peer's entries, as the peer's. When the kernel
// refused the entry as invalid (refused), the error wraps backend.ErrRefusedPeer: the peer alone
// is at fault.
func (id peerID) fail(err error) error {
	pe := &backend.PeerError{Peer: id.name, Subnet: id.subnet, Err: err}
	if refused(err) {
		pe.Reason, pe.Err = backend.ReasonKernel, fmt.Errorf("%w: %w", backend.ErrRefusedPeer, err)
	}
	return pe
}

// refused reports kernel errors that say the entry's data is invalid: EINVAL (a gateway that is a
// local or broadcast address, ...) and ERANGE. Others (EPERM, ENODEV, ENOBUFS, ...) are not about
// the peer.
func refused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE)
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
// the reason and the problem.
func peerError(p backend.Peer, r backend.Reason, format string, args ...any) error {
	return &backend.PeerError{Peer: p.Name, Subnet: p.Subnet, Reason: r,
		Err: fmt.Errorf("%w: %s", backend.ErrInvalidPeer, fmt.Sprintf(format, args...))}
}

// buildDesired validates peers and returns the desired state of the valid ones plus one error per
// invalid peer. Peers conflicting with each other (overlapping subnets, shared VTEP MAC) are all
// rejected, so the outcome does not depend on the order of the input.
func (b *Backend) buildDesired(peers []backend.Peer) (*desired, []error) {
	var errs []error
	cands := make([]candidate, 0, len(peers))
	local := b.local()
	for _, p := range peers {
		c, err := b.checkPeer(p, &local)
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
			cands[i].reject(backend.ReasonSubnet, fmt.Sprintf("Subnet overlaps peer %q (subnet %s)", r.peer.Name, r.peer.Subnet))
			r.reject(backend.ReasonSubnet, fmt.Sprintf("Subnet overlaps peer %q (subnet %s)", cands[i].peer.Name, cands[i].peer.Subnet))
		}
		if reach < 0 || subnet.LastAddr(cands[i].peer.Subnet).Compare(subnet.LastAddr(cands[reach].peer.Subnet)) > 0 {
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
			cands[i].reject(backend.ReasonSharedMAC, fmt.Sprintf("VtepMAC %s is also used by peer %q at %s", cands[i].mac, cands[j].peer.Name, cands[j].public))
			cands[j].reject(backend.ReasonSharedMAC, fmt.Sprintf("VtepMAC %s is also used by peer %q at %s", cands[j].mac, cands[i].peer.Name, cands[i].public))
		}
	}

	d := &desired{
		neigh:  make(map[netip.Addr]neighSpec, len(cands)),
		fdb:    make(map[mac]fdbSpec, len(cands)),
		routes: make(map[netip.Prefix]routeSpec, len(cands)),
	}
	for _, c := range cands {
		if c.conflict != "" {
			errs = append(errs, peerError(c.peer, c.reason, "%s", c.conflict))
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

// without returns d less the entries of the peers whose subnet is in drop. An FDB entry of a
// dropped peer stays when another peer's neighbour entry has its MAC (one node, several subnets).
func (d *desired) without(drop map[netip.Prefix]bool) *desired {
	out := &desired{
		neigh:  make(map[netip.Addr]neighSpec, len(d.neigh)),
		fdb:    make(map[mac]fdbSpec, len(d.fdb)),
		routes: make(map[netip.Prefix]routeSpec, len(d.routes)),
	}
	for ip, s := range d.neigh {
		if !drop[s.peer.subnet] {
			out.neigh[ip] = s
		}
	}
	for dst, s := range d.routes {
		if !drop[s.peer.subnet] {
			out.routes[dst] = s
		}
	}
	for m, s := range d.fdb {
		if !drop[s.peer.subnet] {
			out.fdb[m] = s
			continue
		}
		for _, n := range out.neigh {
			if n.mac == m {
				out.fdb[m] = fdbSpec{peer: n.peer, dst: s.dst}
				break
			}
		}
	}
	return out
}

// candidate is a peer that passed checkPeer, awaiting the checks against the other peers.
type candidate struct {
	peer   backend.Peer
	public netip.Addr
	mac    mac
	// conflict names the first problem found with other peers, and reason its kind; empty if none.
	conflict string
	reason   backend.Reason
}

func (c *candidate) reject(r backend.Reason, why string) {
	if c.conflict == "" {
		c.conflict, c.reason = why, r
	}
}

type checkedPeer struct {
	public netip.Addr
	mac    mac
}

// local is what the backend knows of its node to check a peer's endpoint: the underlay address,
// its prefix and the VTEP MAC. The daemon's peer view checks against every local address.
func (b *Backend) local() backend.Local {
	return backend.Local{Underlay: []netip.Prefix{b.underlay.Net}, Addrs: []netip.Addr{b.underlay.IP}, VtepMAC: b.mac.hw()}
}

// checkPeer validates one peer on its own and against the local node.
func (b *Backend) checkPeer(p backend.Peer, local *backend.Local) (checkedPeer, error) {
	var c checkedPeer
	switch s := p.Subnet; {
	case !s.IsValid():
		return c, peerError(p, backend.ReasonInvalid, "Subnet is missing or invalid")
	case !s.Addr().Is4():
		return c, peerError(p, backend.ReasonInvalid, "Subnet %s is not IPv4", s)
	case s != s.Masked():
		return c, peerError(p, backend.ReasonInvalid, "Subnet %s has host bits set", s)
	case s.Overlaps(b.cfg.Subnet):
		return c, peerError(p, backend.ReasonSubnet, "Subnet %s overlaps this node's subnet %s", s, b.cfg.Subnet)
	case !p.PublicIP.IsValid():
		return c, peerError(p, backend.ReasonInvalid, "PublicIP is missing")
	}
	if err := local.CheckEndpoint(p); err != nil {
		return c, err
	}
	c.public = p.PublicIP.Unmap()
	copy(c.mac[:], p.VtepMAC)
	return c, nil
}
