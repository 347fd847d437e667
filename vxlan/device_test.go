package vxlan

import (
	"net"
	"net/netip"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nstest"
)

func TestEnsureDeviceCreatesAndReuses(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	cfg := testConfig(t)
	b := newBackend(t, n, cfg)
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := "weft.1 vni 1 port 8472 local 192.0.2.1 dev u0 learning false gbp false mtu 1450 mac " +
		deriveMAC("node-1", 1).String() + " up addr 10.244.1.0/32"
	if got := renderDevice(t, n, "weft.1"); got != want {
		t.Fatalf("device:\n got %s\nwant %s", got, want)
	}
	if b.MTU() != 1450 || b.MAC().String() != deriveMAC("node-1", 1).String() || b.LocalIP() != cfg.LocalIP {
		t.Fatalf("MTU %d MAC %s LocalIP %s", b.MTU(), b.MAC(), b.LocalIP())
	}
	// The daemon publishes VTEPMAC before the backend exists; both must agree.
	if published, err := VTEPMAC(cfg); err != nil || published.String() != b.MAC().String() {
		t.Fatalf("VTEPMAC = %s (%v), backend uses %s", published, err, b.MAC())
	}
	index := n.link(t, "weft.1").Attrs().Index

	// A second backend (a daemon restart) adopts the device without writing anything.
	again := newBackend(t, n, cfg)
	if err := again.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := again.Stats(); st.Writes != 0 || st.DeviceCreates != 0 {
		t.Fatalf("reusing a compatible device: %+v, want no writes", st)
	}
	if got := n.link(t, "weft.1").Attrs().Index; got != index {
		t.Fatalf("device recreated: index %d, was %d", got, index)
	}

	// Drift that a live device can absorb is repaired in place.
	dev := n.link(t, "weft.1")
	if err := n.h.LinkSetHardwareAddr(dev, net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}); err != nil {
		t.Fatal(err)
	}
	if err := n.h.LinkSetDown(dev); err != nil {
		t.Fatal(err)
	}
	stale, _ := netlink.ParseAddr("10.9.9.9/32")
	if err := n.h.AddrAdd(dev, stale); err != nil {
		t.Fatal(err)
	}
	cfg.MTU = 1400
	resized := newBackend(t, n, cfg)
	if err := resized.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	want = "weft.1 vni 1 port 8472 local 192.0.2.1 dev u0 learning false gbp false mtu 1400 mac " +
		deriveMAC("node-1", 1).String() + " up addr 10.244.1.0/32"
	if got := renderDevice(t, n, "weft.1"); got != want {
		t.Fatalf("repaired device:\n got %s\nwant %s", got, want)
	}
	if got := n.link(t, "weft.1").Attrs().Index; got != index {
		t.Fatalf("compatible change recreated the device")
	}
}

func TestEnsureDeviceRecreatesIncompatible(t *testing.T) {
	nstest.RequireRoot(t)
	mac := deriveMAC("node-1", 1).String()
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"port", func(c *Config) { c.Port = 4789 },
			"weft.1 vni 1 port 4789 local 192.0.2.1 dev u0 learning false gbp false mtu 1450 mac " + mac + " up addr 10.244.1.0/32"},
		{"vni", func(c *Config) { c.VNI, c.Device = 7, "weft.1" },
			"weft.1 vni 7 port 8472 local 192.0.2.1 dev u0 learning false gbp false mtu 1450 mac " + mac + " up addr 10.244.1.0/32"},
		{"local ip", func(c *Config) { c.LocalIP = netip.MustParseAddr("192.0.2.9") },
			"weft.1 vni 1 port 8472 local 192.0.2.9 dev u0 learning false gbp false mtu 1450 mac " + mac + " up addr 10.244.1.0/32"},
		{"underlay link", func(c *Config) { c.UnderlayLink, c.LocalIP = "u1", netip.MustParseAddr("198.51.100.1") },
			"weft.1 vni 1 port 8472 local 198.51.100.1 dev u1 learning false gbp false mtu 1450 mac " + mac + " up addr 10.244.1.0/32"},
		{"gbp", func(c *Config) { c.GBP = true },
			"weft.1 vni 1 port 8472 local 192.0.2.1 dev u0 learning false gbp true mtu 1450 mac " + mac + " up addr 10.244.1.0/32"},
		{"learning", func(c *Config) { c.Learning = true },
			"weft.1 vni 1 port 8472 local 192.0.2.1 dev u0 learning true gbp false mtu 1450 mac " + mac + " up addr 10.244.1.0/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			withUnderlay(t, n, "192.0.2.1/24")
			n.addAddr(t, "u0", "192.0.2.9/24")
			n.addAddr(t, "u1", "198.51.100.1/24")
			cfg := testConfig(t)
			first := newBackend(t, n, cfg)
			if err := first.SetPeers([]backend.Peer{peerA}); err != nil {
				t.Fatal(err)
			}
			index := n.link(t, "weft.1").Attrs().Index

			tt.change(&cfg)
			b := newBackend(t, n, cfg)
			if err := b.SetPeers([]backend.Peer{peerA}); err != nil {
				t.Fatal(err)
			}
			if got := renderDevice(t, n, "weft.1"); got != tt.want {
				t.Fatalf("device:\n got %s\nwant %s", got, tt.want)
			}
			if got := n.link(t, "weft.1").Attrs().Index; got == index {
				t.Fatalf("incompatible device was not recreated")
			}
			if st := b.Stats(); st.DeviceCreates != 1 {
				t.Fatalf("DeviceCreates = %d, want 1", st.DeviceCreates)
			}
			// The recreated device got every peer entry back.
			want := "fdb 02:aa:00:00:00:02 dst 198.51.100.2\nneigh 10.244.2.0 lladdr 02:aa:00:00:00:02\n" +
				"route 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87 metric 652\n"
			if diff := textDiff(renderPeers(t, n, "weft.1", DefaultRouteProtocol), want); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

func TestEnsureDeviceReplacesForeignLinkType(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	if err := n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "weft.1"}, PeerName: "weft-peer"}); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, n, testConfig(t))
	if err := b.EnsureDevice(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.link(t, "weft.1").(*netlink.Vxlan); !ok {
		t.Fatalf("weft.1 is %s, want vxlan", n.link(t, "weft.1").Type())
	}
}

func TestUnderlayDetection(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	if err := n.h.LinkSetMTU(n.link(t, "u0"), 9000); err != nil {
		t.Fatal(err)
	}
	base := Config{Subnet: netip.MustParsePrefix("10.244.1.0/24"), NodeName: "n"}
	tests := []struct {
		name    string
		change  func(*Config)
		wantIP  string
		wantMTU int
		wantErr bool
	}{
		{"by local IP", func(c *Config) { c.LocalIP = netip.MustParseAddr("192.0.2.1") }, "192.0.2.1", 8950, false},
		{"by link name", func(c *Config) { c.UnderlayLink = "u0" }, "192.0.2.1", 8950, false},
		{"neither, no default route", func(*Config) {}, "", 0, true},
		{"explicit MTU", func(c *Config) { c.UnderlayLink, c.MTU = "u0", 1300 }, "192.0.2.1", 1300, false},
		{"unknown local IP", func(c *Config) { c.LocalIP = netip.MustParseAddr("192.0.2.77") }, "", 0, true},
		{"local IP not on link", func(c *Config) { c.UnderlayLink, c.LocalIP = "u1", netip.MustParseAddr("192.0.2.1") }, "", 0, true},
		{"link without address", func(c *Config) { c.UnderlayLink = "u1" }, "", 0, true},
		{"missing link", func(c *Config) { c.UnderlayLink = "nope0" }, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.change(&cfg)
			b, err := New(cfg, n.h, n.nsh())
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New succeeded, want an underlay error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.LocalIP().String() != tt.wantIP || b.MTU() != tt.wantMTU {
				t.Fatalf("LocalIP %s MTU %d, want %s %d", b.LocalIP(), b.MTU(), tt.wantIP, tt.wantMTU)
			}
		})
	}
}

// TestUnderlayDefaultRoute: with neither link nor address, the default route's link and its first
// global address are the underlay; a jumbo underlay gives the device its MTU minus the overhead.
func TestUnderlayDefaultRoute(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	u0 := n.link(t, "u0")
	if err := n.h.LinkSetMTU(u0, 9216); err != nil {
		t.Fatal(err)
	}
	if err := n.h.RouteAdd(&netlink.Route{LinkIndex: u0.Attrs().Index, Gw: net.ParseIP("192.0.2.254")}); err != nil {
		t.Fatal(err)
	}
	u, err := FindUnderlay(n.h, "", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Link != "u0" || u.IP.String() != "192.0.2.1" || u.Net.String() != "192.0.2.0/24" || u.MTU != 9216 {
		t.Fatalf("underlay %+v", u)
	}
	b, err := New(Config{Subnet: netip.MustParsePrefix("10.244.1.0/24"), NodeName: "n"}, n.h, n.nsh())
	if err != nil {
		t.Fatal(err)
	}
	if b.MTU() != 9166 {
		t.Fatalf("device MTU %d on a 9216 underlay, want 9166", b.MTU())
	}
}

func TestTxChecksumOffload(t *testing.T) {
	nstest.RequireRoot(t)
	n := newNode(t)
	withUnderlay(t, n, "192.0.2.1/24")
	txOn := func() bool {
		var on uint32
		err := n.ns.Do(func(ns.NetNS) error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			on, err = ethtoolValueIoctl(fd, "weft.1", ethtoolGTXCSUM, 0)
			return err
		})
		if err != nil {
			t.Fatalf("read tx checksum offload: %v", err)
		}
		return on != 0
	}
	auto, err := wantTxChecksum(TxChecksumAuto, mustRelease(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode string
		want bool
	}{{TxChecksumOff, false}, {TxChecksumOn, true}, {TxChecksumOff, false}, {TxChecksumAuto, auto}} {
		cfg := testConfig(t)
		cfg.TxChecksumOffload = tt.mode
		b := newBackend(t, n, cfg)
		if err := b.EnsureDevice(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := txOn(); got != tt.want {
			t.Fatalf("mode %s: tx checksum offload on = %t, want %t (kernel %s)", tt.mode, got, tt.want, mustRelease(t))
		}
	}
}

func mustRelease(t *testing.T) string {
	r, err := kernelRelease()
	if err != nil {
		t.Fatal(err)
	}
	return r
}
