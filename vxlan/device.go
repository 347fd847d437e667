package vxlan

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/subnet"
)

// resolveUnderlay finds the underlay (FindUnderlay) and derives the device MTU from it.
func (b *Backend) resolveUnderlay() error {
	u, err := FindUnderlay(b.h, b.cfg.UnderlayLink, b.cfg.LocalIP)
	if err != nil {
		return err
	}
	b.underlay = u
	b.mtu = b.cfg.MTU
	if b.mtu == 0 {
		b.mtu = min(u.MTU, subnet.IPMaxMTU) - subnet.VXLANOverheadIPv4
		if err := subnet.CheckMTU(b.mtu); err != nil {
			return fmt.Errorf("%w: MTU %d of underlay link %s leaves the device an MTU of %w", ErrUnderlay, u.MTU, u.Link, err)
		}
	}
	return nil
}

// ensureDeviceLocked makes the device exist with the configured parameters, MAC, MTU, address and up
// state, and returns its ifindex. An existing device is reused unless incompatible, in which case it
// is deleted and created anew (the kernel then drops its neighbour, FDB and route entries, which the
// caller replays).
func (b *Backend) ensureDeviceLocked() (int, error) {
	name := b.cfg.Device
	link, err := b.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		link = nil
	case err != nil:
		return 0, fmt.Errorf("device %s: %w", name, err)
	}
	if link != nil {
		if why := b.incompatible(link); why != "" {
			b.log.Warn("recreating incompatible device", "reason", why)
			if err := b.write(b.h.LinkDel(link)); err != nil && !errors.Is(err, unix.ENODEV) {
				return 0, fmt.Errorf("delete incompatible device %s (%s): %w", name, why, err)
			}
			link = nil
		}
	}
	if link == nil {
		if link, err = b.createDevice(); err != nil {
			return 0, err
		}
	}
	attrs := link.Attrs()
	if !bytes.Equal(attrs.HardwareAddr, b.mac[:]) {
		b.log.Info("restoring VTEP MAC", "found", attrs.HardwareAddr.String())
		if err := b.setMAC(link); err != nil {
			return 0, err
		}
	}
	if attrs.MTU != b.mtu {
		if err := b.write(b.h.LinkSetMTU(link, b.mtu)); err != nil {
			return 0, fmt.Errorf("set MTU of %s to %d: %w", name, b.mtu, err)
		}
	}
	if err := b.ensureAddress(link); err != nil {
		return 0, err
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := b.write(b.h.LinkSetUp(link)); err != nil {
			return 0, fmt.Errorf("set %s up: %w", name, err)
		}
	}
	if attrs.Index != b.txIndex {
		if err := setTxChecksum(b.nsh, name, b.txChecksum); err != nil {
			return 0, err
		}
		b.txIndex = attrs.Index
	}
	b.devIndex.Store(int64(attrs.Index))
	return attrs.Index, nil
}

// setMAC gives the device the VTEP MAC. The kernel flushes a device's neighbour entries, permanent
// ones included, when its MAC changes. Once the peers are known the reconcile that follows puts them
// back; before the first SetPeers (a daemon restarted while etcd is down, with a new MAC) nothing
// would, so the permanent entries are read first and written again.
func (b *Backend) setMAC(link netlink.Link) error {
	var keep []netlink.Neigh
	if !b.peersKnown.Load() {
		owned, err := b.ownership(link.Attrs().Index).Dump(b.h)
		if err != nil {
			return fmt.Errorf("%s: %w", b.cfg.Device, err)
		}
		keep = owned.Neigh
	}
	if err := b.write(b.h.LinkSetHardwareAddr(link, b.mac.hw())); err != nil {
		return fmt.Errorf("set MAC of %s to %s: %w", b.cfg.Device, b.mac, err)
	}
	var errs []error
	for _, n := range keep {
		n.Type = unix.RTN_UNICAST
		if err := b.write(b.h.NeighSet(&n)); err != nil {
			errs = append(errs, fmt.Errorf("keep neighbour %s lladdr %s across the MAC change: %w", n.IP, n.HardwareAddr, err))
		}
	}
	return errors.Join(errs...)
}

// incompatible returns why an existing link cannot serve as the device, or "" if it can. The
// parameters compared here cannot be changed on a live VXLAN device.
func (b *Backend) incompatible(link netlink.Link) string {
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		return fmt.Sprintf("link type %s, want vxlan", link.Type())
	}
	src, _ := netip.AddrFromSlice(vx.SrcAddr)
	switch {
	case vx.VxlanId != b.cfg.VNI:
		return fmt.Sprintf("VNI %d, want %d", vx.VxlanId, b.cfg.VNI)
	case vx.Port != b.cfg.Port:
		return fmt.Sprintf("port %d, want %d", vx.Port, b.cfg.Port)
	case src.Unmap() != b.underlay.IP:
		return fmt.Sprintf("local IP %s, want %s", vx.SrcAddr, b.underlay.IP)
	case vx.VtepDevIndex != b.underlay.Index:
		return fmt.Sprintf("underlay link index %d, want %d", vx.VtepDevIndex, b.underlay.Index)
	case vx.GBP != b.cfg.GBP:
		return fmt.Sprintf("gbp %t, want %t", vx.GBP, b.cfg.GBP)
	case vx.Learning != b.cfg.Learning:
		return fmt.Sprintf("learning %t, want %t", vx.Learning, b.cfg.Learning)
	case vx.FlowBased:
		return "external (flow based) mode"
	case len(vx.Group) > 0 && !vx.Group.IsUnspecified():
		return fmt.Sprintf("remote/group %s set", vx.Group)
	}
	return ""
}

// createDevice adds the device with its MAC set at creation time (so udev treats it as set, not
// random) and returns it as the kernel reports it.
func (b *Backend) createDevice() (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = b.cfg.Device
	attrs.MTU = b.mtu
	attrs.HardwareAddr = b.mac.hw()
	vx := &netlink.Vxlan{
		LinkAttrs:    attrs,
		VxlanId:      b.cfg.VNI,
		VtepDevIndex: b.underlay.Index,
		SrcAddr:      net.IP(b.underlay.IP.AsSlice()),
		Port:         b.cfg.Port,
		Learning:     b.cfg.Learning,
		GBP:          b.cfg.GBP,
	}
	if err := b.write(b.h.LinkAdd(vx)); err != nil {
		return nil, fmt.Errorf("create device %s: %w", b.cfg.Device, err)
	}
	b.stats.deviceCreates.Add(1)
	b.log.Info("created device", "mac", b.mac, "mtu", b.mtu)
	link, err := b.h.LinkByName(b.cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("device %s after creating it: %w", b.cfg.Device, err)
	}
	return link, nil
}

// ensureAddress gives the device exactly one IPv4 address, the node subnet's network address /32.
func (b *Backend) ensureAddress(link netlink.Link) error {
	want := b.cfg.Subnet.Addr()
	addrs, err := b.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", b.cfg.Device, err)
	}
	have := false
	var stale []netlink.Addr
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ip.Unmap() == want && ones == 32 {
			have = true
			continue
		}
		stale = append(stale, a)
	}
	if !have {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: want.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := b.write(b.h.AddrAdd(link, addr)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add address %s/32 to %s: %w", want, b.cfg.Device, err)
		}
	}
	var errs []error
	for _, a := range stale {
		if err := b.write(b.h.AddrDel(link, &a)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, b.cfg.Device, err))
		}
	}
	return errors.Join(errs...)
}
