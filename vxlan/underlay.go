package vxlan

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
)

// ErrUnderlay marks a failure to find the underlay link, its address or its MTU.
var ErrUnderlay = errors.New("underlay")

// Underlay is the link VXLAN traffic leaves on and the address peers tunnel to.
type Underlay struct {
	// Link and Index name the link.
	Link  string
	Index int
	// IP is the node's underlay IPv4 address, the local VTEP address; Net is its subnet on Link.
	IP  netip.Addr
	Net netip.Prefix
	// MTU is the link's MTU.
	MTU int
}

// FindUnderlay resolves the underlay through h: link names the link and ip the address, either
// may be left out. With link alone the link's first global IPv4 address is used; with ip alone the
// link holding ip; with neither, the link of the IPv4 default route and its first global address.
// Errors wrap ErrUnderlay and say which setting to give.
func FindUnderlay(h *netlink.Handle, link string, ip netip.Addr) (Underlay, error) {
	l, err := underlayLink(h, link, ip)
	if err != nil {
		return Underlay{}, err
	}
	attrs := l.Attrs()
	u := Underlay{Link: attrs.Name, Index: attrs.Index, MTU: attrs.MTU}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return Underlay{}, fmt.Errorf("%w: addresses of %s: %w", ErrUnderlay, attrs.Name, err)
	}
	for _, a := range addrs {
		got, ok := netip.AddrFromSlice(a.IP)
		got = got.Unmap()
		if !ok || (ip.IsValid() && got != ip) || (!ip.IsValid() && a.Scope != unix.RT_SCOPE_UNIVERSE) {
			continue
		}
		ones, _ := a.Mask.Size()
		u.IP, u.Net = got, netip.PrefixFrom(got, ones).Masked()
		return u, nil
	}
	if ip.IsValid() {
		return Underlay{}, fmt.Errorf("%w: %s is not an address of the underlay link %s", ErrUnderlay, ip, attrs.Name)
	}
	return Underlay{}, fmt.Errorf("%w: the underlay link %s has no global IPv4 address; give the node's address", ErrUnderlay, attrs.Name)
}

// underlayLink finds the link by name, as the holder of ip, or as the default route's.
func underlayLink(h *netlink.Handle, name string, ip netip.Addr) (netlink.Link, error) {
	switch {
	case name != "":
		l, err := h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("%w: link %s: %w", ErrUnderlay, name, err)
		}
		return l, nil
	case ip.IsValid():
		addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return nil, fmt.Errorf("%w: list addresses: %w", ErrUnderlay, err)
		}
		for _, a := range addrs {
			if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
				return h.LinkByIndex(a.LinkIndex)
			}
		}
		return nil, fmt.Errorf("%w: %s is not an address of this node", ErrUnderlay, ip)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("%w: list routes: %w", ErrUnderlay, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			l, err := h.LinkByIndex(r.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("%w: the default route's link: %w", ErrUnderlay, err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("%w: no IPv4 default route; give the underlay link or the node's address", ErrUnderlay)
}

// LocalFacts reads through h what a peer's endpoint is checked against on this node
// (backend.Local.CheckEndpoint): every address of the node, secondary ones and other links'
// included, and the prefixes of the IPv4 addresses of the underlay link u. The caller adds the
// pod network and the VTEP MAC.
func LocalFacts(h *netlink.Handle, u Underlay) (backend.Local, error) {
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return backend.Local{}, fmt.Errorf("%w: list the node's addresses: %w", ErrUnderlay, err)
	}
	var l backend.Local
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		l.Addrs = append(l.Addrs, ip)
		if ones, _ := a.Mask.Size(); a.LinkIndex == u.Index && ip.Is4() {
			l.Underlay = append(l.Underlay, netip.PrefixFrom(ip, ones).Masked())
		}
	}
	return l, nil
}
