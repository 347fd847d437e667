package doctor

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/daemon"
	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/vxlan"
)

// nsIPTables runs each iptables command inside a network namespace.
type nsIPTables struct{ n ns.NetNS }

func (x nsIPTables) do(fn func(ipt *iptables.IPTables) error) error {
	return x.n.Do(func(ns.NetNS) error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		return fn(ipt)
	})
}

func (x nsIPTables) ChainExists(table, chain string) (ok bool, err error) {
	err = x.do(func(ipt *iptables.IPTables) (e error) { ok, e = ipt.ChainExists(table, chain); return e })
	return ok, err
}

func (x nsIPTables) List(table, chain string) (rules []string, err error) {
	err = x.do(func(ipt *iptables.IPTables) (e error) { rules, e = ipt.List(table, chain); return e })
	return rules, err
}

// node1 is a weft node in a throwaway network namespace: an underlay veth with 198.51.100.1/24 and
// the VXLAN device the vxlan backend creates for 10.244.1.0/24, as weftd would.
type node1 struct {
	t   *testing.T
	n   ns.NetNS
	h   *netlink.Handle
	be  *vxlan.Backend
	dir string
}

func newNode1(t *testing.T) *node1 {
	nd := &node1{t: t, n: nstest.New(t), dir: t.TempDir()}
	h, err := netlink.NewHandleAt(netns.NsHandle(nd.n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	nd.h = h
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: 1500}, PeerName: "ul1"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lo", "ul0", "ul1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	ul0, _ := h.LinkByName("ul0")
	addr, _ := netlink.ParseAddr("198.51.100.1/24")
	if err := h.AddrAdd(ul0, addr); err != nil {
		t.Fatal(err)
	}
	nd.be, err = vxlan.New(vxlan.Config{
		UnderlayLink: "ul0", LocalIP: netip.MustParseAddr("198.51.100.1"), Subnet: netip.MustParsePrefix("10.244.1.0/24"),
		NodeName: "node1", StateDir: nd.dir,
	}, h, netns.NsHandle(nd.n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.be.EnsureDevice(ctltest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	return nd
}

// program makes the kernel hold exactly the entries of the fixture's peers.
func (nd *node1) program(fixture string) {
	t := nd.t
	var peers []backend.Peer
	for _, p := range readFixture(t, fixture).Peers {
		peers = append(peers, backend.Peer{Name: p.Name, Subnet: p.Subnet, PublicIP: p.PublicIP, VtepMAC: ctltest.MAC(t, p.VtepMAC)})
	}
	if err := nd.be.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
}

// rules installs weft's iptables chains in the namespace, as weftd does.
func (nd *node1) rules(masq bool) {
	nstest.Do(nd.t, nd.n, func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		return daemon.NewRules(ipt, netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.244.1.0/24"), masq,
			slog.New(slog.DiscardHandler)).Ensure()
	})
}

func (nd *node1) env() *cli.Env {
	return &cli.Env{Netlink: nd.h, IPTables: nsIPTables{nd.n}, Now: func() time.Time { return ctltest.FixtureNow }}
}

func readFixture(t *testing.T, name string) *nodeapi.Peers {
	t.Helper()
	data, err := os.ReadFile(ctltest.Fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	var dp nodeapi.Peers
	if err := json.Unmarshal(data, &dp); err != nil {
		t.Fatal(err)
	}
	return &dp
}

// seedNode1 writes the config and the leases of node1 (with the device's MAC) and of the fixture's
// peers.
func seedNode1(t *testing.T, prefix string, mac net.HardwareAddr, fixture string) {
	ctltest.Put(t, srv, prefix+"/config", ctltest.Config, 0)
	a := ctltest.WeftAttrs(t, "node1", "198.51.100.1", "02:00:00:00:00:01")
	a.VtepMAC = mac
	ctltest.PutLease(t, srv, prefix, "10.244.1.0/24", a, 0)
	for _, p := range readFixture(t, fixture).Peers {
		pa := ctltest.WeftAttrs(t, p.Etcd.NodeName, p.Etcd.PublicIP.String(), p.Etcd.VtepMAC)
		if p.Etcd.NodeName == "" {
			pa = ctltest.FlannelAttrs(t, p.Etcd.PublicIP.String(), p.Etcd.VtepMAC)
		}
		ctltest.PutLease(t, srv, prefix, p.Subnet.String(), pa, 0)
	}
}

func writeSubnetEnv(t *testing.T, e subnet.Env) string {
	p := filepath.Join(t.TempDir(), "subnet.env")
	if err := subnet.WriteEnvFile(p, &e); err != nil {
		t.Fatal(err)
	}
	return p
}

var node1Env = subnet.Env{
	Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.1.0/24"), MTU: 1450, IPMasq: true, Ready: true,
}

func doctorArgs(prefix, subnetFile, healthAddr string, extra ...string) []string {
	return append(append([]string{"doctor", "-subnet-file", subnetFile, "-health-addr", healthAddr}, ctltest.EtcdArgs(srv, prefix)...), extra...)
}

func TestDoctorHealthy(t *testing.T) {
	nd := newNode1(t)
	const fixture = "debug-peers-healthy.json"
	nd.program(fixture)
	nd.rules(true)
	prefix := ctltest.Prefix(t, srv)
	seedNode1(t, prefix, nd.be.MAC(), fixture)
	addr := ctltest.ServeWeftd(t, fixture, http.StatusOK, "ok")
	envFile := writeSubnetEnv(t, node1Env)
	r := runCtl(t, nd.env(), nil, doctorArgs(prefix, envFile, addr)...)
	if r.Err != nil {
		t.Errorf("err = %v\n%s", r.Err, r.Stdout)
	}
	ctltest.Golden(t, "doctor-healthy", strings.ReplaceAll(r.Stdout, envFile, "<subnet-file>"))
}

func TestDoctorProblems(t *testing.T) {
	nd := newNode1(t)
	const fixture = "debug-peers.json"
	nd.program(fixture)
	nd.rules(false)
	prefix := ctltest.Prefix(t, srv)
	seedNode1(t, prefix, nd.be.MAC(), fixture)
	// Break the kernel state: node5's route goes, node2's neighbour gets another MAC, a departed
	// peer's neighbour stays, the underlay's MTU shrinks under the device's.
	dev, err := nd.h.LinkByName("weft.1")
	if err != nil {
		t.Fatal(err)
	}
	routes, err := nd.h.RouteList(dev, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "10.244.5.0/24" {
			if err := nd.h.RouteDel(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	for ip, mac := range map[string]string{"10.244.77.0": "02:00:00:00:00:77", "10.244.2.0": "02:00:00:00:00:99"} {
		if err := nd.h.NeighSet(&netlink.Neigh{LinkIndex: dev.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: net.ParseIP(ip), HardwareAddr: ctltest.MAC(t, mac)}); err != nil {
			t.Fatal(err)
		}
	}
	ul0, err := nd.h.LinkByName("ul0")
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.h.LinkSetMTU(ul0, 1420); err != nil {
		t.Fatal(err)
	}
	addr := ctltest.ServeWeftd(t, fixture, http.StatusServiceUnavailable, "last reconcile failed: peer \"node5\": route 10.244.5.0/24: file exists")
	envFile := writeSubnetEnv(t, node1Env)
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			r := runCtl(t, nd.env(), nil, doctorArgs(prefix, envFile, addr, "-o", format)...)
			if !errors.Is(r.Err, cli.ErrProblems) {
				t.Errorf("err = %v, want cli.ErrProblems", r.Err)
			}
			ctltest.Golden(t, "doctor-problems-"+format, strings.ReplaceAll(r.Stdout, envFile, "<subnet-file>"))
		})
	}
}

// TestDoctorWeftdDown checks a node whose weftd is gone: no subnet.env, no health server, no device;
// the peer list then comes from etcd.
func TestDoctorWeftdDown(t *testing.T) {
	nd := newNode1(t)
	const fixture = "debug-peers-healthy.json"
	nd.program(fixture)
	prefix := ctltest.Prefix(t, srv)
	seedNode1(t, prefix, nd.be.MAC(), fixture)
	missing := filepath.Join(t.TempDir(), "subnet.env")
	health := strings.TrimPrefix(ctltest.ClosedPort(t), "http://")
	r := runCtl(t, nd.env(), nil, doctorArgs(prefix, missing, health)...)
	if !errors.Is(r.Err, cli.ErrProblems) {
		t.Errorf("err = %v, want cli.ErrProblems", r.Err)
	}
	ctltest.Golden(t, "doctor-weftd-down", strings.NewReplacer(health, "<health-addr>", missing, "<subnet-file>").Replace(r.Stdout))

	// Without etcd either, and with the device gone.
	dev, err := nd.h.LinkByName("weft.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.h.LinkDel(dev); err != nil {
		t.Fatal(err)
	}
	ep := ctltest.ClosedPort(t)
	r = runCtl(t, nd.env(), nil, "doctor", "-subnet-file", missing, "-health-addr", health, "-etcd-endpoints", ep, "-etcd-timeout", "1s")
	if !errors.Is(r.Err, cli.ErrProblems) {
		t.Errorf("err = %v, want cli.ErrProblems", r.Err)
	}
	ctltest.Golden(t, "doctor-nothing", strings.NewReplacer(health, "<health-addr>", missing, "<subnet-file>", ep, "<etcd>",
		strings.TrimPrefix(ep, "http://"), "<etcd>").Replace(r.Stdout))
}
