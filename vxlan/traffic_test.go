package vxlan

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nstest"
)

// overlayNode is one "node" of the traffic test: a namespace on the underlay bridge running a
// backend, plus a "pod" namespace on a veth in the node's subnet.
type overlayNode struct {
	host, pod *node
	backend   *Backend
	subnet    netip.Prefix
	podIP     netip.Addr
}

// newOverlayNode builds node number i (underlay 192.0.2.i, subnet 10.244.i.0/24, pod 10.244.i.2)
// with its underlay veth eth0 plugged into bridge br0 of the underlay namespace ul.
func newOverlayNode(t *testing.T, ul *node, i byte, port int) *overlayNode {
	t.Helper()
	host, pod := newNode(t), newNode(t)
	ulPort := "ul" + string('0'+i)
	if err := host.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: 1500}, PeerName: ulPort,
		PeerNamespace: netlink.NsFd(int(ul.ns.Fd()))}); err != nil {
		t.Fatalf("underlay veth: %v", err)
	}
	if err := ul.h.LinkSetMaster(ul.link(t, ulPort), ul.link(t, "br0")); err != nil {
		t.Fatal(err)
	}
	ul.up(t, ulPort)
	host.addAddr(t, "eth0", netip.AddrFrom4([4]byte{192, 0, 2, i}).String()+"/24")
	host.up(t, "eth0")

	if err := host.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pod0"}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(int(pod.ns.Fd()))}); err != nil {
		t.Fatalf("pod veth: %v", err)
	}
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, i, 0}), 24)
	gw := netip.AddrFrom4([4]byte{10, 244, i, 1})
	podIP := netip.AddrFrom4([4]byte{10, 244, i, 2})
	host.addAddr(t, "pod0", gw.String()+"/24")
	host.up(t, "pod0")
	host.sysctl(t, "net/ipv4/ip_forward", "1")
	pod.addAddr(t, "eth0", podIP.String()+"/24")
	pod.up(t, "eth0")
	if err := pod.h.RouteAdd(&netlink.Route{Gw: gw.AsSlice()}); err != nil {
		t.Fatalf("pod default route: %v", err)
	}
	pod.sysctl(t, "net/ipv4/ping_group_range", "0 2147483647")

	b := newBackend(t, host, Config{
		UnderlayLink:   "eth0",
		Subnet:         subnet,
		NodeName:       "node-" + string('0'+i),
		StateDir:       t.TempDir(),
		Port:           port,
		VNI:            7,
		ResyncInterval: time.Hour,
	})
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &overlayNode{host: host, pod: pod, backend: b, subnet: subnet, podIP: podIP}
}

func (o *overlayNode) asPeer() backend.Peer {
	return backend.Peer{Name: "peer", Subnet: o.subnet, PublicIP: o.backend.LocalIP(), VtepMAC: o.backend.MAC()}
}

func TestTrafficAcrossOverlay(t *testing.T) {
	nstest.RequireRoot(t)
	const port = 8472
	ul := newNode(t)
	if err := ul.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	ul.up(t, "br0")
	a, b := newOverlayNode(t, ul, 1, port), newOverlayNode(t, ul, 2, port)
	runBackend(t, a.backend)
	runBackend(t, b.backend)
	if err := a.backend.SetPeers([]backend.Peer{b.asPeer()}); err != nil {
		t.Fatal(err)
	}
	if err := b.backend.SetPeers([]backend.Peer{a.asPeer()}); err != nil {
		t.Fatal(err)
	}

	captured := captureVXLAN(t, b.host, "eth0", a.backend.LocalIP(), port)
	rtt := pingUntilReply(t, a.pod, b.podIP, 5*time.Second)
	t.Logf("pod %s -> pod %s: echo reply after %v", a.podIP, b.podIP, rtt)

	select {
	case vni := <-captured:
		if vni != 7 {
			t.Fatalf("captured VXLAN packet with VNI %d, want 7", vni)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no VXLAN packet from %s to UDP port %d seen on node 2's underlay", a.backend.LocalIP(), port)
	}
	for _, c := range []struct {
		n    *overlayNode
		what string
		get  func(*netlink.LinkStatistics) uint64
	}{
		{a, "tx", func(s *netlink.LinkStatistics) uint64 { return s.TxPackets }},
		{b, "rx", func(s *netlink.LinkStatistics) uint64 { return s.RxPackets }},
		{b, "tx", func(s *netlink.LinkStatistics) uint64 { return s.TxPackets }},
		{a, "rx", func(s *netlink.LinkStatistics) uint64 { return s.RxPackets }},
	} {
		st := c.n.host.link(t, "weft.7").Attrs().Statistics
		if st == nil || c.get(st) == 0 {
			t.Errorf("%s: no %s packets counted on weft.7: %+v", c.n.podIP, c.what, st)
		}
	}
}

// pingUntilReply sends ICMP echo requests from the pod (through a ping socket) until one is
// answered or the deadline passes, and returns the time until the first reply.
func pingUntilReply(t *testing.T, pod *node, dst netip.Addr, within time.Duration) time.Duration {
	t.Helper()
	var fd int
	err := pod.ns.Do(func(ns.NetNS) error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	if err != nil {
		t.Fatalf("ping socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		t.Fatal(err)
	}
	to := &unix.SockaddrInet4{Addr: dst.As4()}
	start := time.Now()
	buf := make([]byte, 1500)
	for seq := uint16(1); time.Since(start) < within; seq++ {
		req := []byte{8, 0, 0, 0, 0, 0, 0, 0, 'w', 'e', 'f', 't'} // the kernel sets id and checksum
		binary.BigEndian.PutUint16(req[6:], seq)
		if err := unix.Sendto(fd, req, 0, to); err != nil {
			t.Fatalf("send echo request: %v", err)
		}
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				t.Fatalf("receive echo reply: %v", err)
			}
			if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[6:]) == seq {
				return time.Since(start)
			}
		}
	}
	t.Fatalf("no echo reply from %s within %v", dst, within)
	return 0
}

// captureVXLAN watches link dev of n for an IPv4/UDP packet from src to UDP port and sends the VNI
// of the first one on the returned channel. It stops when the test ends.
func captureVXLAN(t *testing.T, n *node, dev string, src netip.Addr, port int) <-chan uint32 {
	t.Helper()
	ethIP := int(htons(unix.ETH_P_IP))
	var fd int
	err := n.ns.Do(func(ns.NetNS) error {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, ethIP); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: n.link(t, dev).Attrs().Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", dev, err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-stopped
		unix.Close(fd)
	})
	found := make(chan uint32, 1)
	go func() {
		defer close(stopped)
		buf := make([]byte, 65536)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if vni, ok := vxlanVNI(buf[:n], src, port); ok {
				found <- vni
				return
			}
		}
	}()
	return found
}

// vxlanVNI parses an IPv4 packet and returns the VNI if it is VXLAN from src to UDP port.
func vxlanVNI(pkt []byte, src netip.Addr, port int) (uint32, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_UDP {
		return 0, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if netip.AddrFrom4([4]byte(pkt[12:16])) != src || len(pkt) < ihl+8+8 {
		return 0, false
	}
	udp := pkt[ihl:]
	if int(binary.BigEndian.Uint16(udp[2:4])) != port {
		return 0, false
	}
	vx := udp[8:]
	if vx[0]&0x08 == 0 {
		return 0, false
	}
	return binary.BigEndian.Uint32(vx[4:8]) >> 8, true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
