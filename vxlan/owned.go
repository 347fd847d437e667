package vxlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
)

// DeviceName is the default name of the VXLAN device for vni: "weft.<VNI>".
func DeviceName(vni int) string { return fmt.Sprintf("weft.%d", vni) }

// dumpAttempts bounds the retries of a dump the kernel reports as interrupted (NLM_F_DUMP_INTR).
const dumpAttempts = 5

// Ownership is the rule that says which kernel entries are weft's: the permanent neighbour entries
// and permanent self FDB entries on the device, and the main-table routes with weft's route
// protocol on the device or on the underlay link (direct routes). The reconciler writes and deletes
// only these; everything that reads weft's peer entries reads them through Dump.
type Ownership struct {
	// Device and Underlay are the ifindexes of the VXLAN device and of its underlay link.
	Device, Underlay int
	// RouteProtocol marks weft's routes (Config.RouteProtocol).
	RouteProtocol int
}

// OwnershipOf returns the ownership rule for the VXLAN device named device (Config.Device).
func OwnershipOf(h *netlink.Handle, device string, routeProtocol int) (Ownership, error) {
	link, err := h.LinkByName(device)
	if err != nil {
		return Ownership{}, fmt.Errorf("device %s: %w", device, err)
	}
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		return Ownership{}, fmt.Errorf("device %s is a %s link, not vxlan", device, link.Type())
	}
	return Ownership{Device: vx.Index, Underlay: vx.VtepDevIndex, RouteProtocol: routeProtocol}, nil
}

// OwnsNeigh reports whether n is a neighbour entry weft owns.
func (o Ownership) OwnsNeigh(n *netlink.Neigh) bool {
	_, ok := addrOf(n.IP)
	return ok && n.LinkIndex == o.Device && permanent(n.State)
}

// OwnsFDB reports whether n is an FDB entry weft owns.
func (o Ownership) OwnsFDB(n *netlink.Neigh) bool {
	_, ok := addrOf(n.IP)
	return ok && n.LinkIndex == o.Device && len(n.HardwareAddr) == 6 && permanent(n.State) && n.Flags&netlink.NTF_SELF != 0
}

// OwnsRoute reports whether r is a route weft owns.
func (o Ownership) OwnsRoute(r *netlink.Route) bool {
	_, ok := prefixOf(r.Dst)
	return ok && r.Table == unix.RT_TABLE_MAIN && int(r.Protocol) == o.RouteProtocol &&
		(r.LinkIndex == o.Device || r.LinkIndex == o.Underlay)
}

// Owned is what one dump finds of weft's entries.
type Owned struct {
	Neigh  []netlink.Neigh
	FDB    []netlink.Neigh
	Routes []netlink.Route
	// foreign are the other main-table routes with a destination, which may shadow weft's.
	foreign []netlink.Route
}

// Dump reads the device's neighbours, its FDB and the main routing table, once each, and keeps
// the entries o owns.
func (o Ownership) Dump(h *netlink.Handle) (Owned, error) {
	var out Owned
	neigh, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(o.Device, netlink.FAMILY_V4) })
	if err != nil {
		return out, fmt.Errorf("dump neighbours: %w", err)
	}
	fdb, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(o.Device, unix.AF_BRIDGE) })
	if err != nil {
		return out, fmt.Errorf("dump FDB: %w", err)
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return out, fmt.Errorf("dump main routing table: %w", err)
	}
	out.Neigh = slices.DeleteFunc(neigh, func(n netlink.Neigh) bool { return !o.OwnsNeigh(&n) })
	out.FDB = slices.DeleteFunc(fdb, func(n netlink.Neigh) bool { return !o.OwnsFDB(&n) })
	for _, r := range routes {
		if o.OwnsRoute(&r) {
			out.Routes = append(out.Routes, r)
		} else if _, ok := prefixOf(r.Dst); ok {
			out.foreign = append(out.foreign, r)
		}
	}
	return out, nil
}

func retryDump[T any](list func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpAttempts {
		var res []T
		if res, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
	}
	return nil, err
}

// PeerEntry is what the kernel holds, of weft's entries, for one peer subnet.
type PeerEntry struct {
	// Route is weft's route to the subnet; nil when there is none.
	Route *netlink.Route
	// MAC is the neighbour entry of the subnet's network address (the peer's VTEP address); nil
	// when there is none.
	MAC net.HardwareAddr
}

// Peer returns the entries for subnet s.
func (w *Owned) Peer(s netip.Prefix) PeerEntry {
	var e PeerEntry
	for i := range w.Routes {
		if dst, _ := prefixOf(w.Routes[i].Dst); dst == s {
			e.Route = &w.Routes[i]
		}
	}
	for _, n := range w.Neigh {
		if ip, _ := addrOf(n.IP); ip == s.Addr() {
			e.MAC = n.HardwareAddr
		}
	}
	return e
}

// Remotes returns the public IPs the FDB sends hw to.
func (w *Owned) Remotes(hw net.HardwareAddr) []netip.Addr {
	var out []netip.Addr
	for _, f := range w.FDB {
		if ip, _ := addrOf(f.IP); macOf(f.HardwareAddr) == macOf(hw) {
			out = append(out, ip)
		}
	}
	return out
}

// Problems lists how the owned entries differ from what the reconciler programs for p, under the
// ownership o they were dumped with: a route to p's subnet via its network address on the device,
// with a neighbour entry giving that address p's VTEP MAC and an FDB entry sending the MAC to p's
// public IP; or, when the route goes via p's public IP on the underlay link (DirectRouting), that
// route alone. None means the peer is complete.
func (w *Owned) Problems(o Ownership, p backend.Peer) []string {
	e := w.Peer(p.Subnet)
	if e.Route == nil {
		return []string{fmt.Sprintf("no route to %s (proto %d)", p.Subnet, o.RouteProtocol)}
	}
	var bad []string
	gw, _ := addrOf(e.Route.Gw)
	if e.Route.LinkIndex == o.Underlay && gw == p.PublicIP {
		return nil
	}
	if e.Route.LinkIndex != o.Device || gw != p.Subnet.Addr() {
		bad = append(bad, fmt.Sprintf("route to %s goes via %s on link %d, want via %s on the device (link %d)", p.Subnet, gw, e.Route.LinkIndex, p.Subnet.Addr(), o.Device))
	}
	switch {
	case e.MAC == nil:
		bad = append(bad, fmt.Sprintf("no neighbour entry %s", p.Subnet.Addr()))
	case macOf(e.MAC) != macOf(p.VtepMAC):
		bad = append(bad, fmt.Sprintf("neighbour %s has lladdr %s, want %s", p.Subnet.Addr(), e.MAC, p.VtepMAC))
	}
	switch remotes := w.Remotes(p.VtepMAC); {
	case len(remotes) == 0:
		bad = append(bad, fmt.Sprintf("no FDB entry for %s", p.VtepMAC))
	case !slices.Contains(remotes, p.PublicIP):
		bad = append(bad, fmt.Sprintf("FDB sends %s to %s, want %s", p.VtepMAC, remotes[0], p.PublicIP))
	}
	return bad
}

// Stale lists the owned entries that no peer in want accounts for: routes to other subnets, and
// neighbour and FDB entries of no wanted peer.
func (w *Owned) Stale(want []backend.Peer) []string {
	subnets := map[netip.Prefix]bool{}
	gws := map[netip.Addr]bool{}
	macs := map[mac]bool{}
	for _, p := range want {
		subnets[p.Subnet], gws[p.Subnet.Addr()], macs[macOf(p.VtepMAC)] = true, true, true
	}
	var out []string
	for _, r := range w.Routes {
		if dst, _ := prefixOf(r.Dst); !subnets[dst] {
			out = append(out, "route "+dst.String())
		}
	}
	for _, n := range w.Neigh {
		if ip, _ := addrOf(n.IP); !gws[ip] {
			out = append(out, "neighbour "+ip.String())
		}
	}
	for _, f := range w.FDB {
		if !macs[macOf(f.HardwareAddr)] {
			out = append(out, "FDB "+f.HardwareAddr.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
