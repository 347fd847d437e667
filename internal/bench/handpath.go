package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/subnet"
)

// ErrTopology marks a failure to build or change a benchmark topology.
var ErrTopology = errors.New("topology")

// handPath is the reference datapath: weft's topology built by hand, without weft. An underlay
// namespace holds a bridge; each of two node namespaces has a veth on it, a VXLAN device, a pod
// bridge with the gateway address and a pod namespace behind a veth; static neighbour, FDB and
// route entries join the nodes, as weft programs them (no iptables rules, no daemon).
type handPath struct {
	ul     string
	nodes  [2]string
	pods   [2]string
	nodeIP [2]netip.Addr
	podIP  [2]netip.Addr
	ns     map[string]ns.NetNS
}

func handMAC(i int) net.HardwareAddr { return net.HardwareAddr{0x0e, 0x77, 0x62, 0, 0, byte(i + 1)} }

func handSubnet(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i + 1), 0}), 24)
}

// buildHandPath builds the reference path with namespaces named prefix+"ul", "n1", "n2", "n1p",
// "n2p", recorded in reg.
func buildHandPath(reg *registry, prefix string) (*handPath, error) {
	hp := &handPath{ul: prefix + "ul", ns: map[string]ns.NetNS{}}
	for i := range 2 {
		hp.nodes[i] = fmt.Sprintf("%sn%d", prefix, i+1)
		hp.pods[i] = fmt.Sprintf("%sn%dp", prefix, i+1)
		hp.nodeIP[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)})
		hp.podIP[i] = handSubnet(i).Addr().Next().Next()
	}
	for _, name := range append([]string{hp.ul}, append(hp.nodes[:], hp.pods[:]...)...) {
		n, err := reg.createNetns(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTopology, err)
		}
		hp.ns[name] = n
	}
	if err := hp.build(); err != nil {
		return nil, fmt.Errorf("%w: hand-built path: %w", ErrTopology, err)
	}
	return hp, nil
}

func (hp *handPath) build() error {
	err := nsutil.WithHandle(hp.ns[hp.ul], func(h *netlink.Handle) error {
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
			return fmt.Errorf("underlay bridge: %w", err)
		}
		return setUp(h, "lo", "br0")
	})
	if err != nil {
		return err
	}
	for i := range 2 {
		if err := hp.buildNode(i); err != nil {
			return err
		}
	}
	for i := range 2 {
		if err := hp.joinPeer(i, 1-i); err != nil {
			return err
		}
	}
	return nil
}

func (hp *handPath) buildNode(i int) error {
	node, pod := hp.ns[hp.nodes[i]], hp.ns[hp.pods[i]]
	veth := fmt.Sprintf("v%d", i+1)
	err := nsutil.WithHandle(hp.ns[hp.ul], func(h *netlink.Handle) error {
		br, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		if err := h.LinkAdd(&netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: veth, MasterIndex: br.Attrs().Index},
			PeerName:  "eth0", PeerNamespace: netlink.NsFd(int(node.Fd())),
		}); err != nil {
			return fmt.Errorf("underlay veth %s: %w", veth, err)
		}
		return setUp(h, veth)
	})
	if err != nil {
		return err
	}
	sn := handSubnet(i)
	err = nsutil.WithHandle(node, func(h *netlink.Handle) error {
		if err := addAddr(h, "eth0", netip.PrefixFrom(hp.nodeIP[i], 24)); err != nil {
			return err
		}
		if err := setUp(h, "lo", "eth0"); err != nil {
			return err
		}
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: "vx0", MTU: 1500 - subnet.VXLANOverheadIPv4, HardwareAddr: handMAC(i)},
			VxlanId:   1, VtepDevIndex: eth0.Attrs().Index, SrcAddr: hp.nodeIP[i].AsSlice(), Port: 8472,
		}
		if err := h.LinkAdd(vx); err != nil {
			return fmt.Errorf("vxlan device: %w", err)
		}
		if err := addAddr(h, "vx0", netip.PrefixFrom(sn.Addr(), 32)); err != nil {
			return err
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br1", MTU: 1500 - subnet.VXLANOverheadIPv4}}); err != nil {
			return fmt.Errorf("pod bridge: %w", err)
		}
		if err := addAddr(h, "br1", netip.PrefixFrom(sn.Addr().Next(), 24)); err != nil {
			return err
		}
		br, err := h.LinkByName("br1")
		if err != nil {
			return err
		}
		if err := h.LinkAdd(&netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: "hv", MTU: 1500 - subnet.VXLANOverheadIPv4, MasterIndex: br.Attrs().Index},
			PeerName:  "eth0", PeerNamespace: netlink.NsFd(int(pod.Fd())),
		}); err != nil {
			return fmt.Errorf("pod veth: %w", err)
		}
		return setUp(h, "vx0", "br1", "hv")
	})
	if err != nil {
		return err
	}
	if err := node.Do(func(ns.NetNS) error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	}); err != nil {
		return fmt.Errorf("enable forwarding in %s: %w", hp.nodes[i], err)
	}
	return nsutil.WithHandle(pod, func(h *netlink.Handle) error {
		if err := addAddr(h, "eth0", netip.PrefixFrom(hp.podIP[i], 24)); err != nil {
			return err
		}
		if err := setUp(h, "lo", "eth0"); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{Gw: sn.Addr().Next().AsSlice()})
	})
}

// joinPeer programs on node i the neighbour, FDB entry and route of node j, as weft does.
func (hp *handPath) joinPeer(i, j int) error {
	return nsutil.WithHandle(hp.ns[hp.nodes[i]], func(h *netlink.Handle) error {
		vx, err := h.LinkByName("vx0")
		if err != nil {
			return err
		}
		idx, peer := vx.Attrs().Index, handSubnet(j)
		if err := h.NeighAdd(&netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			IP: peer.Addr().AsSlice(), HardwareAddr: handMAC(j),
		}); err != nil {
			return fmt.Errorf("neighbour: %w", err)
		}
		if err := h.NeighAdd(&netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
			IP: hp.nodeIP[j].AsSlice(), HardwareAddr: handMAC(j),
		}); err != nil {
			return fmt.Errorf("fdb: %w", err)
		}
		if err := h.RouteAdd(&netlink.Route{
			LinkIndex: idx, Dst: prefixNet(peer), Gw: peer.Addr().AsSlice(), Flags: int(netlink.FLAG_ONLINK),
		}); err != nil {
			return fmt.Errorf("route: %w", err)
		}
		return nil
	})
}

// setMTU sets the underlay MTU and, VXLAN's overhead below it, the overlay MTU of every link.
func (hp *handPath) setMTU(underlay int) error {
	overlay := underlay - subnet.VXLANOverheadIPv4
	steps := []struct {
		netns string
		mtu   int
		links []string
	}{
		{hp.ul, underlay, []string{"v1", "v2", "br0"}},
		{hp.nodes[0], underlay, []string{"eth0"}},
		{hp.nodes[1], underlay, []string{"eth0"}},
		{hp.nodes[0], overlay, []string{"vx0", "hv", "br1"}},
		{hp.nodes[1], overlay, []string{"vx0", "hv", "br1"}},
		{hp.pods[0], overlay, []string{"eth0"}},
		{hp.pods[1], overlay, []string{"eth0"}},
	}
	for _, s := range steps {
		if err := setMTU(hp.ns[s.netns], s.mtu, s.links...); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrTopology, s.netns, err)
		}
	}
	return nil
}

// namespaces returns every namespace of the path.
func (hp *handPath) namespaces() []ns.NetNS {
	out := make([]ns.NetNS, 0, len(hp.ns))
	for _, n := range hp.ns {
		out = append(out, n)
	}
	return out
}

func setUp(h *netlink.Handle, names ...string) error {
	for _, name := range names {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
	}
	return nil
}

func setMTU(n ns.NetNS, mtu int, names ...string) error {
	return nsutil.WithHandle(n, func(h *netlink.Handle) error {
		for _, name := range names {
			l, err := h.LinkByName(name)
			if err != nil {
				return err
			}
			if err := h.LinkSetMTU(l, mtu); err != nil {
				return fmt.Errorf("set MTU of %s to %d: %w", name, mtu, err)
			}
		}
		return nil
	})
}

func addAddr(h *netlink.Handle, name string, p netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
		return fmt.Errorf("address %s on %s: %w", p, name, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// setGRO turns generic receive offload on or off on every veth in n (veths have it off by
// default; on, they receive through NAPI and aggregate, including VXLAN's outer UDP).
func setGRO(n ns.NetNS, on bool) error {
	var veths []string
	err := nsutil.WithHandle(n, func(h *netlink.Handle) error {
		links, err := h.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Type() == "veth" {
				veths = append(veths, l.Attrs().Name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	state := map[bool]string{true: "on", false: "off"}[on]
	for _, v := range veths {
		if err := runIn(n, "ethtool", "-K", v, "gro", state); err != nil {
			return err
		}
	}
	return nil
}

// runIn runs a command inside n and returns its output in the error when it fails.
func runIn(n ns.NetNS, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := nsutil.Start(n, cmd); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
