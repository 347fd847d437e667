package vxlan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/internal/poll"
)

// node is one throwaway network namespace with a netlink handle in it.
type node struct {
	ns ns.NetNS
	h  *netlink.Handle
}

func newNode(tb testing.TB) *node {
	tb.Helper()
	n := nstest.New(tb)
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		tb.Fatalf("netlink handle in netns: %v", err)
	}
	tb.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		tb.Fatal(err)
	}
	return &node{ns: n, h: h}
}

func (n *node) nsh() netns.NsHandle { return netns.NsHandle(n.ns.Fd()) }

func (n *node) link(tb testing.TB, name string) netlink.Link {
	tb.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		tb.Fatalf("link %s: %v", name, err)
	}
	return l
}

func (n *node) up(tb testing.TB, name string) {
	tb.Helper()
	if err := n.h.LinkSetUp(n.link(tb, name)); err != nil {
		tb.Fatalf("set %s up: %v", name, err)
	}
}

func (n *node) addAddr(tb testing.TB, name, cidr string) {
	tb.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.h.AddrAdd(n.link(tb, name), a); err != nil {
		tb.Fatalf("add %s to %s: %v", cidr, name, err)
	}
}

// sysctl writes a /proc/sys value inside the node's namespace.
func (n *node) sysctl(tb testing.TB, path, value string) {
	tb.Helper()
	err := n.ns.Do(func(ns.NetNS) error {
		return os.WriteFile("/proc/sys/"+path, []byte(value), 0o644)
	})
	if err != nil {
		tb.Fatalf("sysctl %s=%s: %v", path, value, err)
	}
}

// withUnderlay gives the node a veth pair u0/u1 (both ends here, both up) with cidr on u0: an
// underlay link without a second namespace.
func withUnderlay(tb testing.TB, n *node, cidr string) {
	tb.Helper()
	if err := n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "u0", MTU: 1500}, PeerName: "u1"}); err != nil {
		tb.Fatalf("add veth: %v", err)
	}
	n.addAddr(tb, "u0", cidr)
	n.up(tb, "u0")
	n.up(tb, "u1")
}

// testConfig is a backend config for a node with underlay u0 at 192.0.2.1 and subnet 10.244.1.0/24.
func testConfig(tb testing.TB) Config {
	return Config{
		UnderlayLink:   "u0",
		LocalIP:        netip.MustParseAddr("192.0.2.1"),
		Subnet:         netip.MustParsePrefix("10.244.1.0/24"),
		NodeName:       "node-1",
		StateDir:       tb.TempDir(),
		ResyncInterval: time.Hour,
	}
}

func newBackend(tb testing.TB, n *node, cfg Config) *Backend {
	tb.Helper()
	b, err := New(cfg, n.h, n.nsh())
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return b
}

// peer builds a backend.Peer from strings.
func peer(name, subnet, public, mac string) backend.Peer {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return backend.Peer{Name: name, Subnet: netip.MustParsePrefix(subnet), PublicIP: netip.MustParseAddr(public), VtepMAC: hw}
}

// renderPeers renders, sorted, what the kernel holds for peers of device dev: its permanent IPv4
// neighbours, its permanent self FDB entries, every main-table route on it and every route with
// protocol proto anywhere. On routes it reads wider than Ownership on purpose: a test must see the
// foreign routes weft has to leave alone.
func renderPeers(tb testing.TB, n *node, dev string, proto int) string {
	tb.Helper()
	l, err := n.h.LinkByName(dev)
	if err != nil {
		return "no device " + dev + "\n"
	}
	idx := l.Attrs().Index
	var lines []string
	neighs, err := n.h.NeighList(idx, netlink.FAMILY_V4)
	if err != nil {
		tb.Fatalf("list neighbours: %v", err)
	}
	for _, e := range neighs {
		if permanent(e.State) {
			lines = append(lines, fmt.Sprintf("neigh %s lladdr %s", e.IP, e.HardwareAddr))
		}
	}
	fdb, err := n.h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		tb.Fatalf("list fdb: %v", err)
	}
	for _, e := range fdb {
		if permanent(e.State) && e.Flags&netlink.NTF_SELF != 0 {
			lines = append(lines, fmt.Sprintf("fdb %s dst %s", e.HardwareAddr, e.IP))
		}
	}
	routes, err := n.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		tb.Fatalf("list routes: %v", err)
	}
	for _, r := range routes {
		if r.LinkIndex != idx && int(r.Protocol) != proto {
			continue
		}
		lines = append(lines, renderRoute(tb, n, r))
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func renderRoute(tb testing.TB, n *node, r netlink.Route) string {
	tb.Helper()
	l, err := n.h.LinkByIndex(r.LinkIndex)
	if err != nil {
		tb.Fatalf("link of route %v: %v", r, err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "route %s", r.Dst)
	if r.Gw != nil {
		fmt.Fprintf(&sb, " via %s", r.Gw)
	}
	fmt.Fprintf(&sb, " dev %s", l.Attrs().Name)
	if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
		sb.WriteString(" onlink")
	}
	if r.Scope != netlink.SCOPE_UNIVERSE {
		fmt.Fprintf(&sb, " scope %s", r.Scope)
	}
	fmt.Fprintf(&sb, " proto %d", r.Protocol)
	if r.Priority != 0 {
		fmt.Fprintf(&sb, " metric %d", r.Priority)
	}
	return sb.String()
}

// renderDevice renders the VXLAN device's parameters, or "no device".
func renderDevice(tb testing.TB, n *node, dev string) string {
	tb.Helper()
	l, err := n.h.LinkByName(dev)
	if err != nil {
		return "no device " + dev
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return fmt.Sprintf("%s type %s", dev, l.Type())
	}
	under, err := n.h.LinkByIndex(vx.VtepDevIndex)
	if err != nil {
		tb.Fatalf("underlay of %s: %v", dev, err)
	}
	state := "down"
	if vx.Flags&net.FlagUp != 0 {
		state = "up"
	}
	addrs, err := n.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		tb.Fatal(err)
	}
	var as []string
	for _, a := range addrs {
		as = append(as, a.IPNet.String())
	}
	return fmt.Sprintf("%s vni %d port %d local %s dev %s learning %t gbp %t mtu %d mac %s %s addr %s",
		dev, vx.VxlanId, vx.Port, vx.SrcAddr, under.Attrs().Name, vx.Learning, vx.GBP, vx.MTU, vx.HardwareAddr, state, strings.Join(as, ","))
}

// eventually polls cond until it returns "" or the deadline passes, then fails with the last
// mismatch.
func eventually(tb testing.TB, within time.Duration, what string, cond func() string) time.Duration {
	tb.Helper()
	took, err := poll.Until(context.Background(), what+" converged", within, func() error {
		if diff := cond(); diff != "" {
			return errors.New("\n" + diff)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return took
}

// textDiff returns "" when got equals want, else both texts.
func textDiff(got, want string) string {
	if got == want {
		return ""
	}
	return fmt.Sprintf("--- got\n%s--- want\n%s", got, want)
}

// addForeignRoute adds a scope-link route to dst on dev with protocol static: a route weft must
// never touch.
func addForeignRoute(tb testing.TB, n *node, dev, dst string) {
	tb.Helper()
	_, ipnet, err := net.ParseCIDR(dst)
	if err != nil {
		tb.Fatal(err)
	}
	r := &netlink.Route{LinkIndex: n.link(tb, dev).Attrs().Index, Dst: ipnet, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
	if err := n.h.RouteAdd(r); err != nil {
		tb.Fatalf("add foreign route %s dev %s: %v", dst, dev, err)
	}
}

// sortedLines sorts the lines of a newline-terminated text.
func sortedLines(text string) string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}
