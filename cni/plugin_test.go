package cni_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/cni"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/subnet"
)

// TestVersion execs the binary with nothing but CNI_COMMAND=VERSION, as podman probes it.
func TestVersion(t *testing.T) {
	nstest.RequireRoot(t)
	cmd := exec.Command(filepath.Join(binDir, "weft"))
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	var got struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("VERSION printed %q: %v", out, err)
	}
	if want := "0.3.1 0.4.0 1.0.0 1.1.0"; strings.Join(got.SupportedVersions, " ") != want || got.CNIVersion != "1.1.0" {
		t.Errorf("VERSION = %s, want cniVersion 1.1.0 supporting %s", out, want)
	}
}

// TestErrors checks the CNI error objects of a bad config and of a node whose weftd is not ready.
func TestErrors(t *testing.T) {
	n := newNode(t, testEnv)
	pod := nstest.New(t)
	rt := runtimeConf("c1", "eth0", pod.Path())
	tests := []struct {
		name     string
		setup    func()
		extra    string
		wantCode uint
		wantMsg  string
	}{
		{"unknown field", nil, `"brdige":"weft0"`, types.ErrInvalidNetworkConfig, `field "brdige": unknown field`},
		{"bad value", nil, `"mtu":"big"`, types.ErrInvalidNetworkConfig, `field "mtu": must be a JSON integer`},
		{"subnet file missing", func() { os.Remove(n.subnetFile) }, "", types.ErrTryAgainLater, "weftd is not ready"},
		{"subnet file malformed", func() { os.WriteFile(n.subnetFile, []byte("FLANNEL_SUBNET=nonsense\n"), 0o644) }, "",
			types.ErrTryAgainLater, "weftd is not ready"},
		{"weftd not ready", func() { env := testEnv; env.Ready = false; n.writeEnv(env) }, "",
			types.ErrTryAgainLater, "WEFT_READY is not true"},
		{"lease expired", func() { env := testEnv; env.LeaseExpiry = time.Now().Add(-time.Minute); n.writeEnv(env) }, "",
			types.ErrTryAgainLater, "the subnet lease expired at"},
		{"netns missing", func() { n.writeEnv(testEnv) }, "", types.ErrInvalidEnvironmentVariables, `CNI_NETNS="/run/netns/weft-cni-does-not-exist": not a network namespace`},
		{"netns is a plain file", nil, "", types.ErrInvalidEnvironmentVariables, "CNI_NETNS=\"" + n.subnetFile + "\": not a network namespace"},
		{"netns is the node's", nil, "", types.ErrInvalidEnvironmentVariables, "the plugin's own network namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			rt := rt
			switch tt.name {
			case "netns missing":
				rt = runtimeConf("c1", "eth0", "/run/netns/weft-cni-does-not-exist")
			case "netns is a plain file":
				rt = runtimeConf("c1", "eth0", n.subnetFile)
			case "netns is the node's":
				rt = runtimeConf("c1", "eth0", n.ns.Path())
			}
			_, err := n.add(n.list("1.0.0", tt.extra), rt)
			if cniCode(err) != tt.wantCode || !strings.Contains(fmt.Sprint(err), tt.wantMsg) {
				t.Errorf("ADD error = %v (code %d), want code %d containing %q", err, cniCode(err), tt.wantCode, tt.wantMsg)
			}
			if got := n.state(); strings.Contains(got, "ipam") || strings.Contains(got, "veth") {
				t.Errorf("failed ADD left state:\n%s", got)
			}
		})
	}
}

// TestAddDelAllVersions runs ADD, repeated ADD, CHECK and DEL at every supported version.
func TestAddDelAllVersions(t *testing.T) {
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			n := newNode(t, testEnv)
			pod := nstest.New(t)
			l := n.list(v, `"dns":{"nameservers":["10.96.0.10"]}`)
			const id = "c0ffee"
			rt := runtimeConf(id, "eth0", pod.Path())
			host := cni.HostVethName(id, "eth0")

			res := n.mustAdd(l, rt)
			if got, want := fmt.Sprint(res.IPs[0].Address.String(), " gw ", res.IPs[0].Gateway, " routes ", res.Routes), "10.244.7.2/24 gw 10.244.7.1 routes [{Dst:{IP:0.0.0.0 Mask:00000000} GW:10.244.7.1 MTU:0 AdvMSS:0 Priority:0 Table:<nil> Scope:<nil>}]"; got != want {
				t.Errorf("result ips/routes:\n got %s\nwant %s", got, want)
			}
			var ifaces []string
			for _, i := range res.Interfaces {
				ifaces = append(ifaces, i.Name+"@"+i.Sandbox)
			}
			if got, want := strings.Join(ifaces, " "), "weft0@ "+host+"@ eth0@"+pod.Path(); got != want {
				t.Errorf("result interfaces %q, want %q", got, want)
			}
			if i := res.IPs[0].Interface; i == nil || *i != 2 {
				t.Errorf("result IP points at interface %v, want 2", i)
			}
			if got := strings.Join(res.DNS.Nameservers, ","); got != "10.96.0.10" {
				t.Errorf("result DNS nameservers %q, want the config's", got)
			}
			wantNode := fmt.Sprintf("bridge weft0 [10.244.7.1/24] mtu=1450 up=true mac=0a:58:0a:f4:07:01\n"+
				"veth %s master=weft0 mtu=1450 up=true hairpin=true\nipam 10.244.7.2 %s/eth0\n", host, id)
			if got := n.state(); got != wantNode {
				t.Errorf("node state after ADD:\n%s\nwant:\n%s", got, wantNode)
			}
			wantPod := "eth0 [10.244.7.2/24] mtu=1450 up=true\nroute default via 10.244.7.1\nroute 10.244.7.0/24 dev\n"
			if got := podState(t, pod, "eth0"); got != wantPod {
				t.Errorf("pod state after ADD:\n%s\nwant:\n%s", got, wantPod)
			}

			again := n.mustAdd(l, rt)
			if again.IPs[0].Address.String() != res.IPs[0].Address.String() || again.Interfaces[2].Mac != res.Interfaces[2].Mac {
				t.Errorf("repeated ADD gave %s %s, first %s %s", again.IPs[0].Address.String(), again.Interfaces[2].Mac,
					res.IPs[0].Address.String(), res.Interfaces[2].Mac)
			}
			if got := n.state(); got != wantNode {
				t.Errorf("node state after repeated ADD:\n%s\nwant:\n%s", got, wantNode)
			}

			err := n.check(l, rt)
			if v == "0.3.1" {
				if !errors.Is(err, libcni.ErrorCheckNotSupp) {
					t.Errorf("libcni CHECK at 0.3.1 = %v, want ErrorCheckNotSupp", err)
				}
				direct := execPlugin(t, n, "CHECK", fmt.Sprintf(`{"cniVersion":"0.3.1","name":"weft","type":"weft","subnetFile":%q,"dataDir":%q}`, n.subnetFile, n.dataDir), rt)
				if cniCode(direct) != types.ErrIncompatibleCNIVersion {
					t.Errorf("plugin CHECK at 0.3.1 = %v, want code 1", direct)
				}
			} else if err != nil {
				t.Errorf("CHECK: %v", err)
			}

			n.mustDel(l, rt)
			if got := n.state(); got != "bridge weft0 [10.244.7.1/24] mtu=1450 up=true mac=0a:58:0a:f4:07:01\n" {
				t.Errorf("node state after DEL:\n%s", got)
			}
			if got := podState(t, pod, "eth0"); got != "no eth0\n" {
				t.Errorf("pod state after DEL:\n%s", got)
			}
			n.mustDel(l, rt)

			// DEL needs neither the subnet file nor the netns.
			n.mustAdd(l, rt)
			os.Remove(n.subnetFile)
			n.mustDel(l, runtimeConf(id, "eth0", ""))
			if got := n.state(); strings.Contains(got, "veth") || strings.Contains(got, "ipam") {
				t.Errorf("DEL without subnet file and netns left:\n%s", got)
			}
		})
	}
}

// execPlugin runs the weft binary directly, for what libcni refuses to send.
func execPlugin(t *testing.T, n *node, command, conf string, rt *libcni.RuntimeConf) error {
	t.Helper()
	return n.in(func(ctx context.Context) error {
		args := &invoke.Args{Command: command, ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName, Path: binDir}
		return invoke.ExecPluginWithoutResult(ctx, filepath.Join(binDir, "weft"), []byte(conf), args, nil)
	})
}

// TestCheckDetectsBreakage breaks one thing at a time behind the plugin's back and expects CHECK to
// name it.
func TestCheckDetectsBreakage(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, n *node, pod ns.NetNS)
		want    string
	}{
		{"intact", func(*testing.T, *node, ns.NetNS) {}, ""},
		{"address removed", func(t *testing.T, _ *node, pod ns.NetNS) {
			h := handleIn(t, pod)
			l, _ := h.LinkByName("eth0")
			a, _ := netlink.ParseAddr("10.244.7.2/24")
			if err := h.AddrDel(l, a); err != nil {
				t.Fatal(err)
			}
		}, "lacks 10.244.7.2/24"},
		{"default route removed", func(t *testing.T, _ *node, pod ns.NetNS) {
			h := handleIn(t, pod)
			_, dst, _ := net.ParseCIDR("0.0.0.0/0")
			if err := h.RouteDel(&netlink.Route{Dst: dst}); err != nil {
				t.Fatal(err)
			}
		}, "no route to 0.0.0.0/0 via 10.244.7.1"},
		{"pod interface down", func(t *testing.T, _ *node, pod ns.NetNS) {
			h := handleIn(t, pod)
			l, _ := h.LinkByName("eth0")
			if err := h.LinkSetDown(l); err != nil {
				t.Fatal(err)
			}
		}, "eth0 is down"},
		{"veth detached", func(t *testing.T, n *node, _ ns.NetNS) {
			h := handleIn(t, n.ns)
			l, _ := h.LinkByName(cni.HostVethName("c1", "eth0"))
			if err := h.LinkSetNoMaster(l); err != nil {
				t.Fatal(err)
			}
		}, "is not attached to weft0"},
		{"veth deleted", func(t *testing.T, n *node, _ ns.NetNS) {
			h := handleIn(t, n.ns)
			l, _ := h.LinkByName(cni.HostVethName("c1", "eth0"))
			if err := h.LinkDel(l); err != nil {
				t.Fatal(err)
			}
		}, "host veth " + cni.HostVethName("c1", "eth0")},
		{"allocation lost", func(t *testing.T, n *node, _ ns.NetNS) {
			if err := os.Remove(filepath.Join(n.dataDir, "weft", "10.244.7.2")); err != nil {
				t.Fatal(err)
			}
		}, "no address is allocated to c1/eth0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, testEnv)
			pod := nstest.New(t)
			l := n.list("1.0.0", "")
			rt := runtimeConf("c1", "eth0", pod.Path())
			n.mustAdd(l, rt)
			tt.breakIt(t, n, pod)
			err := n.check(l, rt)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CHECK: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CHECK = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestGCAndStatus leaks attachments three ways (an attachment the runtime cached but no longer
// wants, an ADD made through another libcni cache, and the remains of a plugin killed mid-ADD) and
// expects GC to leave only the valid attachment. Then STATUS follows the subnet file.
func TestGCAndStatus(t *testing.T) {
	n := newNode(t, testEnv)
	l := n.list("1.1.0", "")
	keep := runtimeConf("keep", "eth0", nstest.New(t).Path())
	stale := runtimeConf("stale", "eth0", nstest.New(t).Path())
	n.mustAdd(l, keep)
	n.mustAdd(l, stale)
	other := &node{t: t, ns: n.ns, subnetFile: n.subnetFile, dataDir: n.dataDir,
		cni: newRuntime(filepath.Join(n.dir, "other-cache"))}
	other.mustAdd(l, runtimeConf("uncached", "eth0", nstest.New(t).Path()))
	// A plugin killed mid-ADD: an allocation with no veth, and a veth on the bridge with no allocation.
	if err := os.WriteFile(filepath.Join(n.dataDir, "weft", "10.244.7.200"), []byte("killed\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := handleIn(t, n.ns)
	br, err := h.LinkByName("weft0")
	if err != nil {
		t.Fatal(err)
	}
	half := cni.HostVethName("killed2", "eth0")
	la := netlink.NewLinkAttrs()
	la.Name = half
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "wfpeer"}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMasterByIndex(&netlink.Veth{LinkAttrs: la}, br.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	// A veth that only looks like one of ours is not on the bridge and must survive.
	la = netlink.NewLinkAttrs()
	la.Name = cni.HostVethName("foreign", "eth0")
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "foreignpeer"}); err != nil {
		t.Fatal(err)
	}

	err = n.in(func(ctx context.Context) error {
		return n.cni.GCNetworkList(ctx, l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	veths := []string{
		"veth " + cni.HostVethName("foreign", "eth0") + " master=none mtu=1500 up=false hairpin=false\n",
		"veth foreignpeer master=none mtu=1500 up=false hairpin=false\n",
		"veth " + cni.HostVethName("keep", "eth0") + " master=weft0 mtu=1450 up=true hairpin=true\n",
	}
	slices.Sort(veths)
	want := "bridge weft0 [10.244.7.1/24] mtu=1450 up=true mac=0a:58:0a:f4:07:01\n" + strings.Join(veths, "") +
		"ipam 10.244.7.2 keep/eth0\n"
	if got := n.state(); got != want {
		t.Errorf("after GC:\n%s\nwant:\n%s", got, want)
	}
	if err := n.check(l, keep); err != nil {
		t.Errorf("CHECK of the kept attachment after GC: %v", err)
	}

	status := func() error {
		return n.in(func(ctx context.Context) error { return n.cni.GetStatusNetworkList(ctx, l) })
	}
	for _, tt := range []struct {
		name  string
		setup func()
		code  uint
	}{
		{"ready", func() {}, 0},
		{"not ready", func() { env := testEnv; env.Ready = false; n.writeEnv(env) }, types.ErrPluginNotAvailable},
		{"malformed", func() { os.WriteFile(n.subnetFile, []byte("garbage"), 0o644) }, types.ErrPluginNotAvailable},
		{"missing", func() { os.Remove(n.subnetFile) }, types.ErrPluginNotAvailable},
		{"ready again", func() { n.writeEnv(testEnv) }, 0},
	} {
		tt.setup()
		err := status()
		if cniCode(err) != tt.code || (tt.code != 0 && !strings.Contains(err.Error(), "weftd is not ready")) {
			t.Errorf("STATUS %s = %v (code %d), want code %d", tt.name, err, cniCode(err), tt.code)
		}
	}
}

// TestConnectivity attaches two pods and expects them to reach each other and the gateway, with the
// bridge keeping its MAC address as ports come and go.
func TestConnectivity(t *testing.T) {
	n := newNode(t, testEnv)
	l := n.list("1.0.0", "")
	podA, podB := nstest.New(t), nstest.New(t)
	a := n.mustAdd(l, runtimeConf("pod-a", "eth0", podA.Path()))
	b := n.mustAdd(l, runtimeConf("pod-b", "eth0", podB.Path()))
	ipA, ipB := a.IPs[0].Address.IP.String(), b.IPs[0].Address.IP.String()
	serve(t, podA, ipA+":8080", "pod-a")
	serve(t, podB, ipB+":8080", "pod-b")
	serve(t, n.ns, "10.244.7.1:8080", "node")
	for _, c := range []struct {
		from       ns.NetNS
		name, addr string
		want       string
	}{
		{podA, "a to b", ipB + ":8080", "pod-b"},
		{podB, "b to a", ipA + ":8080", "pod-a"},
		{podA, "a to gateway", "10.244.7.1:8080", "node"},
		{n.ns, "node to a", ipA + ":8080", "pod-a"},
	} {
		got, err := dial(c.from, c.addr)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	h := handleIn(t, n.ns)
	br, err := h.LinkByName("weft0")
	if err != nil {
		t.Fatal(err)
	}
	if got := br.Attrs().HardwareAddr.String(); got != a.Interfaces[0].Mac || got != "0a:58:0a:f4:07:01" {
		t.Errorf("bridge MAC %s, ADD reported %s, want 0a:58:0a:f4:07:01", got, a.Interfaces[0].Mac)
	}
}

// loadShipped loads etc/10-weft.conflist as a runtime does and checks its shape.
func loadShipped(t *testing.T) *libcni.NetworkConfigList {
	t.Helper()
	l, err := libcni.ConfListFromFile("../etc/10-weft.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if l.CNIVersion != "1.1.0" || l.Name != "weft" || len(l.Plugins) != 2 || l.Plugins[0].Network.Type != "weft" ||
		l.Plugins[1].Network.Type != "portmap" || !l.Plugins[1].Network.Capabilities["portMappings"] {
		t.Fatalf("shipped conflist: version %s, name %s, %d plugins; want 1.1.0 negotiated, weft, then portmap with portMappings",
			l.CNIVersion, l.Name, len(l.Plugins))
	}
	return l
}

// TestShippedConflist checks the conflist a node installs: a 1.1 runtime negotiates 1.1.0 from
// cniVersions, and the weft entry is a valid config once libcni injects name and version.
func TestShippedConflist(t *testing.T) {
	l := loadShipped(t)
	withName, err := libcni.InjectConf(l.Plugins[0], map[string]any{"name": l.Name, "cniVersion": l.CNIVersion})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cni.ParseConfig(withName.Bytes)
	if err != nil {
		t.Fatalf("weft entry: %v", err)
	}
	if c.Bridge != cni.DefaultBridge || c.SubnetFile != subnet.DefaultEnvFile || c.DataDir != cni.DefaultDataDir || c.MTU != 0 || !c.HairpinMode {
		t.Errorf("weft entry does not use the defaults: %+v", c)
	}
}

// TestPortmapChain loads the shipped conflist (weft + portmap) and publishes a hostPort that must
// answer on the node's address, from another host and from the node itself.
func TestPortmapChain(t *testing.T) {
	nstest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if _, err := exec.LookPath("iptables"); err != nil {
			t.Skip("skipped: portmap needs nft (Debian package nftables) or iptables")
		}
	}
	n := newNode(t, testEnv)
	shipped := loadShipped(t)
	weft, err := libcni.InjectConf(shipped.Plugins[0], map[string]any{"subnetFile": n.subnetFile, "dataDir": n.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	shipped.Plugins[0] = weft

	// An uplink from the node to a client host on 198.51.100.0/24.
	client := nstest.New(t)
	h := handleIn(t, n.ns)
	la := netlink.NewLinkAttrs()
	la.Name = "uplink"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(client.Fd()))}); err != nil {
		t.Fatal(err)
	}
	ch := handleIn(t, client)
	for _, side := range []struct {
		h          *netlink.Handle
		link, addr string
	}{
		{h, "uplink", "198.51.100.1/24"},
		{ch, "eth0", "198.51.100.2/24"},
	} {
		l, err := side.h.LinkByName(side.link)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(side.addr)
		if err := side.h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	err = n.ns.Do(func(ns.NetNS) error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}

	pod := nstest.New(t)
	rt := runtimeConf("web", "eth0", pod.Path())
	rt.CapabilityArgs = map[string]any{"portMappings": []map[string]any{{"hostPort": 30080, "containerPort": 8080, "protocol": "tcp"}}}
	res := n.mustAdd(shipped, rt)
	serve(t, pod, res.IPs[0].Address.IP.String()+":8080", "web")
	for _, from := range []struct {
		name string
		ns   ns.NetNS
	}{{"client", client}, {"node", n.ns}} {
		got, err := dial(from.ns, "198.51.100.1:30080")
		if err != nil || got != "web" {
			t.Errorf("hostPort from %s: got %q, %v; want %q", from.name, got, err, "web")
		}
	}
	if err := n.check(shipped, rt); err != nil {
		t.Errorf("CHECK of the chain: %v", err)
	}
	n.mustDel(shipped, rt)
	if got, err := dial(client, "198.51.100.1:30080"); err == nil {
		t.Errorf("hostPort still answers %q after DEL", got)
	}
}

// TestConcurrentAdds runs 32 ADDs at once and then 32 DELs at once.
func TestConcurrentAdds(t *testing.T) {
	n := newNode(t, testEnv)
	l := n.list("1.1.0", "")
	const pods = 32
	rts := make([]*libcni.RuntimeConf, pods)
	for i := range rts {
		rts[i] = runtimeConf(fmt.Sprintf("pod%02d", i), "eth0", nstest.New(t).Path())
	}
	addrs := make([]string, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() {
			res, err := n.add(l, rts[i])
			if errs[i] = err; err == nil {
				addrs[i] = res.IPs[0].Address.IP.String()
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range pods {
		if errs[i] != nil {
			t.Fatalf("ADD %d: %v", i, errs[i])
		}
		if j, dup := seen[addrs[i]]; dup {
			t.Errorf("pods %d and %d both got %s", j, i, addrs[i])
		}
		seen[addrs[i]] = i
	}
	if got := strings.Count(n.state(), "master=weft0"); got != pods {
		t.Errorf("%d veths on the bridge, want %d", got, pods)
	}
	for i := range pods {
		wg.Go(func() { errs[i] = n.del(l, rts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := n.state(); got != "bridge weft0 [10.244.7.1/24] mtu=1450 up=true mac=0a:58:0a:f4:07:01\n" {
		t.Errorf("after concurrent DELs:\n%s", got)
	}
}

// TestAddDelCycles repeats ADD and DEL and expects nothing left behind.
func TestAddDelCycles(t *testing.T) {
	cycles := 300
	if testing.Short() {
		cycles = 30
	}
	addDelCycles(t, cycles)
}

// TestSoakAddDelCycles is make soak's long run (WEFT_SOAK=1).
func TestSoakAddDelCycles(t *testing.T) {
	if os.Getenv("WEFT_SOAK") != "1" {
		t.Skip("skipped: soak test, run with WEFT_SOAK=1 (make soak)")
	}
	addDelCycles(t, 10000)
}

func addDelCycles(t *testing.T, cycles int) {
	n := newNode(t, testEnv)
	l := n.list("1.0.0", "")
	pod := nstest.New(t)
	for i := range cycles {
		rt := runtimeConf(fmt.Sprintf("cycle%d", i), "eth0", pod.Path())
		n.mustAdd(l, rt)
		n.mustDel(l, rt)
	}
	if got := n.state(); got != "bridge weft0 [10.244.7.1/24] mtu=1450 up=true mac=0a:58:0a:f4:07:01\n" {
		t.Errorf("after %d cycles:\n%s", cycles, got)
	}
	if got := podState(t, pod, "eth0"); got != "no eth0\n" {
		t.Errorf("pod after %d cycles:\n%s", cycles, got)
	}
}

// TestExhaustion fills a /29 (five pod addresses) and expects a clear error for the sixth pod, with
// nothing left behind, until a DEL frees an address.
func TestExhaustion(t *testing.T) {
	env := testEnv
	env.Subnet = netip.MustParsePrefix("10.244.7.0/29")
	n := newNode(t, env)
	l := n.list("1.0.0", "")
	var got []string
	for i := range 5 {
		res := n.mustAdd(l, runtimeConf(fmt.Sprint("p", i), "eth0", nstest.New(t).Path()))
		got = append(got, res.IPs[0].Address.IP.String())
	}
	if want := "10.244.7.2 10.244.7.3 10.244.7.4 10.244.7.5 10.244.7.6"; strings.Join(got, " ") != want {
		t.Errorf("addresses %v, want %s", got, want)
	}
	before := n.state()
	sixth := runtimeConf("p5", "eth0", nstest.New(t).Path())
	_, err := n.add(l, sixth)
	if err == nil || !strings.Contains(err.Error(), "no free address in 10.244.7.0/29") {
		t.Fatalf("sixth ADD = %v, want an exhaustion error naming the subnet", err)
	}
	if after := n.state(); after != before {
		t.Errorf("failed ADD changed the node:\n%s\nwas:\n%s", after, before)
	}
	n.mustDel(l, runtimeConf("p2", "eth0", ""))
	if res := n.mustAdd(l, sixth); res.IPs[0].Address.IP.String() != "10.244.7.4" {
		t.Errorf("after freeing 10.244.7.4 the sixth pod got %s", res.IPs[0].Address.IP)
	}
}

// TestMTUOverride checks the "mtu" field wins over the subnet file's.
func TestMTUOverride(t *testing.T) {
	n := newNode(t, testEnv)
	pod := nstest.New(t)
	n.mustAdd(n.list("1.0.0", `"mtu":1400,"hairpinMode":false`), runtimeConf("m", "eth0", pod.Path()))
	want := fmt.Sprintf("bridge weft0 [10.244.7.1/24] mtu=1400 up=true mac=0a:58:0a:f4:07:01\n"+
		"veth %s master=weft0 mtu=1400 up=true hairpin=false\nipam 10.244.7.2 m/eth0\n", cni.HostVethName("m", "eth0"))
	if got := n.state(); got != want {
		t.Errorf("node:\n%s\nwant:\n%s", got, want)
	}
	if got := podState(t, pod, "eth0"); !strings.HasPrefix(got, "eth0 [10.244.7.2/24] mtu=1400 up=true\n") {
		t.Errorf("pod:\n%s", got)
	}
}

// TestKilledAddsLeaveNothingGCMisses kills ADDs (SIGKILL) at moments spread over the whole ADD, each
// in a sandbox of its own, then runs GC with no valid attachment: the node and every sandbox must be
// left as if no ADD had run. A host veth left off the bridge (a kill between creating and enslaving
// it) would survive GC, which only removes veths on the bridge.
func TestKilledAddsLeaveNothingGCMisses(t *testing.T) {
	n := newNode(t, testEnv)
	l := n.list("1.1.0", "")
	var one time.Duration
	for i := range 3 {
		rt := runtimeConf(fmt.Sprint("measure", i), "eth0", nstest.New(t).Path())
		start := time.Now()
		n.mustAdd(l, rt)
		one += time.Since(start) / 3
		n.mustDel(l, rt)
	}
	const kills = 150
	sandboxes := make([]ns.NetNS, kills)
	killed := 0
	for k := range kills {
		sandboxes[k] = nstest.New(t)
		rt := runtimeConf(fmt.Sprint("killed", k), "eth0", sandboxes[k].Path())
		err := n.ns.Do(func(ns.NetNS) error {
			ctx, cancel := context.WithTimeout(context.Background(), one*time.Duration(k)/kills)
			defer cancel()
			_, err := n.cni.AddNetworkList(ctx, l, rt)
			return err
		})
		if err != nil {
			killed++
		}
	}
	t.Logf("%d of %d ADDs killed, 0 to %v into an ADD that takes %v", killed, kills, one, one)
	if err := n.in(func(ctx context.Context) error {
		return n.cni.GCNetworkList(ctx, l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{}})
	}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if got, want := n.state(), "bridge weft0 [10.244.7.1/24] mtu=1450 up=true mac=0a:58:0a:f4:07:01\n"; got != want {
		t.Errorf("after the kills and GC:\n%s\nwant:\n%s", got, want)
	}
	for k, sb := range sandboxes {
		if got := podState(t, sb, "eth0"); got != "no eth0\n" {
			t.Errorf("sandbox of killed%d after GC:\n%s", k, got)
		}
	}
}

// TestConcurrentAddDelOneContainer races ADD against DEL of one container, as a runtime that
// gives up on a pod while it is still being attached does: afterwards the attachment is either
// whole (the pod's interface, its veth on the bridge and its IPAM record) or gone, never a pod
// holding an address IPAM has released.
func TestConcurrentAddDelOneContainer(t *testing.T) {
	n := newNode(t, testEnv)
	l := n.list("1.1.0", "")
	pod := nstest.New(t)
	rt := runtimeConf("racer", "eth0", pod.Path())
	const rounds = 200
	whole, gone := 0, 0
	for round := range rounds {
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = n.add(l, rt) })
		wg.Go(func() { _ = n.del(l, rt) })
		wg.Wait()
		podIf := !strings.HasPrefix(podState(t, pod, "eth0"), "no eth0")
		st := n.state()
		veth, record := strings.Contains(st, "master=weft0"), strings.Contains(st, "racer/eth0")
		switch {
		case podIf && veth && record:
			whole++
		case !podIf && !veth && !record:
			gone++
		default:
			t.Fatalf("round %d: pod interface %t, veth %t, IPAM record %t:\n%s", round, podIf, veth, record, st)
		}
		n.mustDel(l, rt)
	}
	t.Logf("%d rounds: %d ended attached, %d detached, 0 inconsistent", rounds, whole, gone)
}
