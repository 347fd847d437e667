package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrUnderlay marks a failure to find the underlay interface or address.
var ErrUnderlay = errors.New("underlay")

// underlay is the link and address peers tunnel to.
type underlay struct {
	link     string
	publicIP netip.Addr
}

// findUnderlay resolves the underlay from the flags: -iface names the link, -public-ip the address;
// without either, the link of the IPv4 default route and its first global address are used.
func findUnderlay(h *netlink.Handle, iface string, publicIP netip.Addr) (underlay, error) {
	var link netlink.Link
	var err error
	switch {
	case iface != "":
		if link, err = h.LinkByName(iface); err != nil {
			return underlay{}, fmt.Errorf("%w: -iface=%s: %w", ErrUnderlay, iface, err)
		}
	case publicIP.IsValid():
		if link, err = linkWithAddr(h, publicIP); err != nil {
			return underlay{}, err
		}
	default:
		routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return underlay{}, fmt.Errorf("%w: list routes: %w", ErrUnderlay, err)
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if link, err = h.LinkByIndex(r.LinkIndex); err != nil {
					return underlay{}, fmt.Errorf("%w: default route's link: %w", ErrUnderlay, err)
				}
				break
			}
		}
		if link == nil {
			return underlay{}, fmt.Errorf("%w: no IPv4 default route; give -iface or -public-ip", ErrUnderlay)
		}
	}
	u := underlay{link: link.Attrs().Name, publicIP: publicIP}
	if u.publicIP.IsValid() {
		return u, nil
	}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil {
		return underlay{}, fmt.Errorf("%w: addresses of %s: %w", ErrUnderlay, u.link, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if ok && a.Scope == unix.RT_SCOPE_UNIVERSE {
			u.publicIP = ip
			return u, nil
		}
	}
	return underlay{}, fmt.Errorf("%w: %s has no global IPv4 address; give -public-ip", ErrUnderlay, u.link)
}

func linkWithAddr(h *netlink.Handle, ip netip.Addr) (netlink.Link, error) {
	addrs, err := h.AddrList(nil, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("%w: list addresses: %w", ErrUnderlay, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP.To4()); ok && got == ip {
			return h.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("%w: -public-ip=%s is not an address of this node", ErrUnderlay, ip)
}

// enableForwarding turns on IPv4 forwarding in the daemon's network namespace.
func enableForwarding() error {
	const path = "/proc/sys/net/ipv4/ip_forward"
	cur, err := os.ReadFile(path)
	if err == nil && len(cur) > 0 && cur[0] == '1' {
		return nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}
