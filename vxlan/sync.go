package vxlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// op is one planned kernel write.
type op func() error

// syncPeers diffs the desired state against one dump of the kernel and writes only the
// differences: adds and replacements first (neighbour, FDB, route), then deletions of entries weft
// owns that are no longer desired (route, FDB, neighbour). Owned are the permanent neighbour and FDB
// entries on the device and the main-table routes with weft's protocol on the device or the
// underlay link; nothing else is ever modified. Every possible write is attempted; the errors are
// joined.
func (b *Backend) syncPeers(dev int, d *desired) error {
	ks, err := b.ownership(dev).Dump(b.h)
	if err != nil {
		return fmt.Errorf("%s: %w", b.cfg.Device, err)
	}
	neighAdds, neighDels := b.planNeigh(dev, ks.Neigh, d)
	fdbAdds, fdbDels := b.planFDB(dev, ks.FDB, d)
	routeAdds, routeDels, errs := b.planRoutes(dev, ks, d)
	for _, ops := range [][]op{neighAdds, fdbAdds, routeAdds, routeDels, fdbDels, neighDels} {
		for _, o := range ops {
			if err := o(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// planNeigh plans the neighbour entries from the owned ones: desired ones missing or differing are
// set, the other owned ones deleted.
func (b *Backend) planNeigh(dev int, kernel []netlink.Neigh, d *desired) (adds, dels []op) {
	have := make(map[netip.Addr]netlink.Neigh, len(kernel))
	for _, n := range kernel {
		if ip, ok := addrOf(n.IP); ok {
			have[ip] = n
		}
	}
	for ip, spec := range d.neigh {
		if n, ok := have[ip]; ok && macOf(n.HardwareAddr) == spec.mac {
			continue
		}
		adds = append(adds, func() error {
			err := b.write(b.h.NeighSet(&netlink.Neigh{
				LinkIndex: dev, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
				IP: ip.AsSlice(), HardwareAddr: spec.mac.hw(),
			}))
			if err != nil {
				return spec.peer.fail(fmt.Errorf("neighbour %s lladdr %s: %w", ip, spec.mac, err))
			}
			return nil
		})
	}
	for ip, n := range have {
		if _, ok := d.neigh[ip]; ok {
			continue
		}
		dels = append(dels, func() error {
			if err := b.write(b.h.NeighDel(&n)); err != nil && !gone(err) {
				return fmt.Errorf("delete neighbour %s: %w", ip, err)
			}
			return nil
		})
	}
	return adds, dels
}

// planFDB plans the permanent self FDB entries (one remote per VTEP MAC).
func (b *Backend) planFDB(dev int, kernel []netlink.Neigh, d *desired) (adds, dels []op) {
	type fdbKey struct {
		mac mac
		dst netip.Addr
	}
	have := make(map[fdbKey]netlink.Neigh, len(kernel))
	remotes := make(map[mac]int, len(kernel))
	for _, n := range kernel {
		ip, _ := addrOf(n.IP)
		have[fdbKey{macOf(n.HardwareAddr), ip}] = n
		remotes[macOf(n.HardwareAddr)]++
	}
	replaced := make(map[mac]bool)
	for m, spec := range d.fdb {
		if _, ok := have[fdbKey{m, spec.dst}]; ok {
			continue
		}
		// A replace rewrites the MAC's first remote in place: when the MAC has exactly one
		// remote, that remote needs no deletion afterwards.
		replaced[m] = remotes[m] == 1
		adds = append(adds, func() error {
			err := b.write(b.h.NeighSet(&netlink.Neigh{
				LinkIndex: dev, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
				IP: spec.dst.AsSlice(), HardwareAddr: m.hw(),
			}))
			if err != nil {
				return spec.peer.fail(fmt.Errorf("fdb %s dst %s: %w", m, spec.dst, err))
			}
			return nil
		})
	}
	for k, n := range have {
		if spec, ok := d.fdb[k.mac]; (ok && spec.dst == k.dst) || replaced[k.mac] {
			continue
		}
		dels = append(dels, func() error {
			if err := b.write(b.h.NeighDel(&n)); err != nil && !gone(err) {
				return fmt.Errorf("delete fdb %s dst %s: %w", k.mac, k.dst, err)
			}
			return nil
		})
	}
	return adds, dels
}

// planRoutes plans weft's routes and reports desired routes that foreign routes shadow.
func (b *Backend) planRoutes(dev int, ks Owned, d *desired) (adds, dels []op, errs []error) {
	have := make(map[netip.Prefix][]netlink.Route, len(ks.Routes))
	for _, r := range ks.Routes {
		dst, _ := prefixOf(r.Dst)
		have[dst] = append(have[dst], r)
	}
	foreign := make(map[netip.Prefix]netlink.Route)
	for _, r := range ks.foreign {
		if dst, _ := prefixOf(r.Dst); foreign[dst].Dst == nil || r.Priority < foreign[dst].Priority {
			foreign[dst] = r
		}
	}
	for dst, spec := range d.routes {
		want := b.route(dev, dst, spec)
		if f, ok := foreign[dst]; ok && f.Priority < want.Priority {
			// weft's route is still installed, to take over once the foreign route is gone. A
			// foreign route with weft's exact key makes the exclusive add fail instead.
			errs = append(errs, spec.peer.fail(fmt.Errorf("route %s: %w: it is shadowed by metric %d (protocol %d, link index %d)",
				dst, ErrRouteConflict, f.Priority, f.Protocol, f.LinkIndex)))
		}
		owned := have[dst]
		delete(have, dst)
		keep := slices.IndexFunc(owned, func(r netlink.Route) bool { return routeMatches(&r, want) })
		if keep < 0 {
			// A route with the same key (metric, tos) is replaced in place; without one, the route
			// is added exclusively so that a foreign route holding the key is never replaced.
			keep = slices.IndexFunc(owned, func(r netlink.Route) bool { return r.Priority == want.Priority && r.Tos == 0 })
			adds = append(adds, b.routeSet(want, spec, keep >= 0))
		}
		for i, r := range owned {
			if i != keep {
				dels = append(dels, b.routeDel(r))
			}
		}
	}
	for _, rs := range have {
		for _, r := range rs {
			dels = append(dels, b.routeDel(r))
		}
	}
	return adds, dels, errs
}

// routeMetrics is the number of distinct metrics weft spreads its routes over.
const routeMetrics = 4096

// routeMetric derives the metric of the route to dst, 1..routeMetrics. The kernel hashes IPv4
// route nexthop data (struct fib_info) by device, protocol, scope, preferred source and metric, but
// not by gateway: routes differing only in their gateway share one hash chain, and every insert
// scans it, which makes programming N peers quadratic (measured: 5,000 routes took ~4x as long as
// with spread metrics). Each destination has one route, so the metric never selects between weft
// routes; deriving it from the destination keeps it stable across restarts.
func routeMetric(dst netip.Prefix) int {
	a := dst.Addr().As4()
	h := uint32(2166136261) // FNV-1a
	for _, c := range [5]byte{a[0], a[1], a[2], a[3], byte(dst.Bits())} {
		h = (h ^ uint32(c)) * 16777619
	}
	return 1 + int(h%routeMetrics)
}

// ownership is the rule for what weft owns on device dev.
func (b *Backend) ownership(dev int) Ownership {
	return Ownership{Device: dev, Underlay: b.underlay.Index, RouteProtocol: b.cfg.RouteProtocol}
}

// route builds the desired kernel route to a peer subnet.
func (b *Backend) route(dev int, dst netip.Prefix, spec routeSpec) *netlink.Route {
	r := &netlink.Route{
		Dst:      &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
		Gw:       spec.gw.AsSlice(),
		Priority: routeMetric(dst),
		Protocol: netlink.RouteProtocol(b.cfg.RouteProtocol),
		Table:    unix.RT_TABLE_MAIN,
		Type:     unix.RTN_UNICAST,
		Scope:    netlink.SCOPE_UNIVERSE,
	}
	if spec.direct {
		r.LinkIndex = b.underlay.Index
	} else {
		r.LinkIndex = dev
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	return r
}

// routeSet replaces (when weft owns a route with the same key) or exclusively adds want.
func (b *Backend) routeSet(want *netlink.Route, spec routeSpec, replace bool) op {
	return func() error {
		if replace {
			if err := b.write(b.h.RouteReplace(want)); err != nil {
				return spec.peer.fail(fmt.Errorf("replace route %s via %s: %w", want.Dst, spec.gw, err))
			}
			return nil
		}
		err := b.write(b.h.RouteAdd(want))
		if errors.Is(err, unix.EEXIST) {
			return spec.peer.fail(fmt.Errorf("route %s: %w: one holds metric %d", want.Dst, ErrRouteConflict, want.Priority))
		}
		if err != nil {
			return spec.peer.fail(fmt.Errorf("add route %s via %s: %w", want.Dst, spec.gw, err))
		}
		return nil
	}
}

func (b *Backend) routeDel(r netlink.Route) op {
	return func() error {
		if err := b.write(b.h.RouteDel(&r)); err != nil && !gone(err) {
			return fmt.Errorf("delete route %s via %s: %w", r.Dst, r.Gw, err)
		}
		return nil
	}
}

// routeMatches reports whether the kernel route r is exactly the desired route want.
func routeMatches(r, want *netlink.Route) bool {
	const onlink = int(netlink.FLAG_ONLINK)
	return r.LinkIndex == want.LinkIndex && r.Gw.Equal(want.Gw) && r.Priority == want.Priority && r.Tos == 0 &&
		r.Type == want.Type && r.Scope == want.Scope && r.Flags&onlink == want.Flags&onlink &&
		len(r.MultiPath) == 0 && r.Src == nil
}

func permanent(state int) bool { return state&netlink.NUD_PERMANENT != 0 }

// gone reports errors that mean the entry to delete is already absent.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV)
}

func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

func macOf(hw net.HardwareAddr) mac {
	var m mac
	copy(m[:], hw)
	return m
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := addrOf(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}
