package cni

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// vethPrefix starts every host-side veth name the plugin creates.
const vethPrefix = "wf"

// HostVethName returns the name of the host end of an attachment's veth pair: "wf" and 11 hex
// digits of the 64-bit FNV-1a hash of the container ID and the interface name. DEL and GC derive it
// again, so they find the link without any cache. (FNV rather than a cryptographic hash: the crypto
// packages' initialisation would add milliseconds to every exec.)
func HostVethName(containerID, ifName string) string {
	h := fnv.New64a()
	h.Write([]byte(containerID + "\x00" + ifName))
	return fmt.Sprintf("%s%016x", vethPrefix, h.Sum64())[:len(vethPrefix)+11]
}

// isHostVethName tells whether name has the shape of a HostVethName.
func isHostVethName(name string) bool {
	if len(name) != len(vethPrefix)+11 || name[:len(vethPrefix)] != vethPrefix {
		return false
	}
	for _, c := range name[len(vethPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// bridgeMAC is the fixed MAC address of a bridge whose gateway is gw: 0a:58 and the IPv4 address.
// Setting it keeps the kernel from changing the bridge's address as ports come and go, which would
// leave stale gateway entries in the pods' ARP caches.
func bridgeMAC(gw netip.Addr) net.HardwareAddr {
	a := gw.As4()
	return net.HardwareAddr{0x0a, 0x58, a[0], a[1], a[2], a[3]}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT)
}

// ensureBridge makes the bridge exist, be up, carry gw (the gateway with the subnet's prefix length)
// and have the given MTU.
func ensureBridge(h netlinksafe.Handle, name string, gw netip.Prefix, mtu int) (*netlink.Bridge, error) {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.HardwareAddr = bridgeMAC(gw.Addr())
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		l, err = h.LinkByName(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%w: %s is a %s link", ErrNotBridge, name, l.Type())
	}
	// Set through the bridge (not at creation) so the kernel keeps it when the last port leaves.
	if br.MTU != mtu {
		if err := h.LinkSetMTU(br, mtu); err != nil {
			return nil, fmt.Errorf("bridge %s: set MTU %d: %w", name, mtu, err)
		}
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(gw)}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("bridge %s: add %s: %w", name, gw, err)
	}
	if br.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("bridge %s: set up: %w", name, err)
		}
	}
	return br, nil
}

// vethSpec is the desired veth pair of one attachment.
type vethSpec struct {
	hostName, podName string
	mtu               int
	bridge            *netlink.Bridge
	hairpin           bool
	podNSFd           int
}

// ensureVeth makes the pair exist with the host end enslaved to the bridge and up, and the pod end
// named podName in the pod's netns. A complete pair from an earlier ADD is kept; a host end whose
// peer is not the pod's interface is replaced.
func ensureVeth(host, pod netlinksafe.Handle, s vethSpec) (hostLink, podLink netlink.Link, err error) {
	hostLink, err = host.LinkByName(s.hostName)
	switch {
	case err == nil:
		podLink, err = pod.LinkByName(s.podName)
		if err == nil && isPair(hostLink, podLink) {
			break
		}
		if err := deleteLink(host, s.hostName); err != nil {
			return nil, nil, err
		}
		hostLink = nil
	case !isNotFound(err):
		return nil, nil, fmt.Errorf("veth %s: %w", s.hostName, err)
	}
	if hostLink == nil {
		if err := addVeth(s); err != nil {
			if errors.Is(err, syscall.EEXIST) {
				return nil, nil, fmt.Errorf("create veth %s: %s already exists in the pod's netns", s.hostName, s.podName)
			}
			return nil, nil, fmt.Errorf("create veth %s (peer %s): %w", s.hostName, s.podName, err)
		}
		if hostLink, err = host.LinkByName(s.hostName); err != nil {
			return nil, nil, fmt.Errorf("veth %s: %w", s.hostName, err)
		}
		if podLink, err = pod.LinkByName(s.podName); err != nil {
			return nil, nil, fmt.Errorf("veth peer %s: %w", s.podName, err)
		}
	}
	if hostLink.Attrs().MasterIndex != s.bridge.Index {
		if err := host.LinkSetMaster(hostLink, s.bridge); err != nil {
			return nil, nil, fmt.Errorf("veth %s: attach to %s: %w", s.hostName, s.bridge.Name, err)
		}
	}
	if err := host.LinkSetHairpin(hostLink, s.hairpin); err != nil {
		return nil, nil, fmt.Errorf("veth %s: hairpin: %w", s.hostName, err)
	}
	for _, l := range []struct {
		h    netlinksafe.Handle
		link netlink.Link
	}{{host, hostLink}, {pod, podLink}} {
		if l.link.Attrs().MTU != s.mtu {
			if err := l.h.LinkSetMTU(l.link, s.mtu); err != nil {
				return nil, nil, fmt.Errorf("veth %s: set MTU %d: %w", l.link.Attrs().Name, s.mtu, err)
			}
		}
	}
	if err := host.LinkSetUp(hostLink); err != nil {
		return nil, nil, fmt.Errorf("veth %s: set up: %w", s.hostName, err)
	}
	return hostLink, podLink, nil
}

// addVeth creates the pair, the host end in the plugin's netns and already enslaved to the bridge,
// the pod end in the pod's netns, in one RTM_NEWLINK request. netlink's LinkAdd would enslave the
// host end in a second request, and a plugin killed between the two would leave a veth off the
// bridge, which GC does not recognise as the plugin's.
func addVeth(s vethSpec) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(s.hostName)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.mtu))))
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(s.bridge.Index))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(s.podName))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.mtu)))
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(s.podNSFd)))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// isPair tells whether a and b, seen from their own netns, are the two ends of one veth pair.
func isPair(a, b netlink.Link) bool {
	_, av := a.(*netlink.Veth)
	_, bv := b.(*netlink.Veth)
	return av && bv && a.Attrs().ParentIndex == b.Attrs().Index && b.Attrs().ParentIndex == a.Attrs().Index
}

// configurePod gives the pod's interface its address, brings it up and routes the default through
// the gateway.
func configurePod(pod netlinksafe.Handle, link netlink.Link, addr netip.Prefix, gw netip.Addr) error {
	name := link.Attrs().Name
	if err := pod.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("%s: add %s: %w", name, addr, err)
	}
	if err := pod.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set up: %w", name, err)
	}
	route := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0)),
		Gw:        gw.AsSlice(),
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if err := pod.RouteReplace(route); err != nil {
		return fmt.Errorf("%s: default route via %s: %w", name, gw, err)
	}
	return nil
}

// deleteLink removes the named link; a missing link is no error.
func deleteLink(h netlinksafe.Handle, name string) error {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
