package cni_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weft-net/weft/cni"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/subnet"
)

// binDir holds the plugins TestMain builds: weft itself, portmap for chaining, and the reference
// chain bridge + host-local for the benchmark.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	// Fuzzing runs only FuzzParseConfig, in worker processes that re-run TestMain: no plugins needed.
	fuzzing := flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true"
	if os.Geteuid() == 0 && !fuzzing {
		dir, err := os.MkdirTemp("", "weft-cni-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// Static, as plugins are shipped: dynamic linking costs every exec milliseconds.
		cmd := exec.Command("go", "build", "-o", dir+"/",
			"github.com/weft-net/weft/cmd/weft",
			"github.com/containernetworking/plugins/plugins/meta/portmap",
			"github.com/containernetworking/plugins/plugins/main/bridge",
			"github.com/containernetworking/plugins/plugins/ipam/host-local")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the plugins: %v\n%s", err, out)
			return 1
		}
		binDir = dir
	}
	return m.Run()
}

// handleIn opens a netlink handle inside n.
func handleIn(t testing.TB, n ns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// node is a throwaway node: a netns holding the bridge, a subnet file, an IPAM dir and a libcni
// runtime with its own cache, all removed when the test ends.
type node struct {
	t          testing.TB
	ns         ns.NetNS
	dir        string
	subnetFile string
	dataDir    string
	cni        *libcni.CNIConfig
}

var testEnv = subnet.Env{
	Network: netip.MustParsePrefix("10.244.0.0/16"),
	Subnet:  netip.MustParsePrefix("10.244.7.0/24"),
	MTU:     1450,
	IPMasq:  true,
	Ready:   true,
}

func newNode(t testing.TB, env subnet.Env) *node {
	t.Helper()
	nstest.RequireRoot(t)
	dir := t.TempDir()
	n := &node{
		t:          t,
		ns:         nstest.New(t),
		dir:        dir,
		subnetFile: filepath.Join(dir, "run", "subnet.env"),
		dataDir:    filepath.Join(dir, "ipam"),
		cni:        newRuntime(filepath.Join(dir, "cache")),
	}
	n.writeEnv(env)
	return n
}

// newRuntime returns a libcni runtime caching results in cacheDir. It sets the exec explicitly:
// libcni fills in a nil one lazily, which races when ADDs run concurrently.
func newRuntime(cacheDir string) *libcni.CNIConfig {
	ex := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	return libcni.NewCNIConfigWithCacheDir([]string{binDir}, cacheDir, ex)
}

func (n *node) writeEnv(env subnet.Env) {
	n.t.Helper()
	if err := subnet.WriteEnvFile(n.subnetFile, &env); err != nil {
		n.t.Fatal(err)
	}
}

// list returns a conflist of weft alone, at cniVersion, with extra plugin fields (JSON, may be "").
func (n *node) list(cniVersion, extra string) *libcni.NetworkConfigList {
	n.t.Helper()
	if extra != "" {
		extra = "," + extra
	}
	conf := fmt.Sprintf(`{"cniVersion":%q,"name":"weft","plugins":[{"type":"weft","subnetFile":%q,"dataDir":%q%s}]}`,
		cniVersion, n.subnetFile, n.dataDir, extra)
	l, err := libcni.ConfListFromBytes([]byte(conf))
	if err != nil {
		n.t.Fatal(err)
	}
	return l
}

func runtimeConf(id, ifName, netnsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, IfName: ifName, NetNS: netnsPath}
}

// in runs fn in the node's netns: a runtime execs plugins from the host netns, and the child inherits
// the netns of the thread that forks it.
func (n *node) in(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return n.ns.Do(func(ns.NetNS) error { return fn(ctx) })
}

func (n *node) add(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*current.Result, error) {
	var res types.Result
	err := n.in(func(ctx context.Context) (err error) {
		res, err = n.cni.AddNetworkList(ctx, l, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

func (n *node) del(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return n.in(func(ctx context.Context) error { return n.cni.DelNetworkList(ctx, l, rt) })
}

func (n *node) check(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return n.in(func(ctx context.Context) error { return n.cni.CheckNetworkList(ctx, l, rt) })
}

func (n *node) mustAdd(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *current.Result {
	n.t.Helper()
	res, err := n.add(l, rt)
	if err != nil {
		n.t.Fatalf("ADD %s/%s: %v", rt.ContainerID, rt.IfName, err)
	}
	return res
}

func (n *node) mustDel(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	n.t.Helper()
	if err := n.del(l, rt); err != nil {
		n.t.Fatalf("DEL %s/%s: %v", rt.ContainerID, rt.IfName, err)
	}
}

// state renders what the plugin left on the node: the bridge, its ports and the IPAM records.
func (n *node) state() string {
	n.t.Helper()
	h := handleIn(n.t, n.ns)
	var b strings.Builder
	br, err := h.LinkByName(cni.DefaultBridge)
	if err != nil {
		b.WriteString("no bridge\n")
	} else {
		fmt.Fprintf(&b, "bridge %s %s mtu=%d up=%t mac=%s\n", br.Attrs().Name, addrs(n.t, h, br), br.Attrs().MTU,
			br.Attrs().Flags&net.FlagUp != 0, br.Attrs().HardwareAddr)
	}
	links, err := h.LinkList()
	if err != nil {
		n.t.Fatal(err)
	}
	var ports []string
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		master, hairpin := "none", false
		if br != nil && l.Attrs().MasterIndex == br.Attrs().Index {
			pi, err := h.LinkGetProtinfo(l)
			if err != nil {
				n.t.Fatal(err)
			}
			master, hairpin = br.Attrs().Name, pi.Hairpin
		}
		ports = append(ports, fmt.Sprintf("veth %s master=%s mtu=%d up=%t hairpin=%t\n", l.Attrs().Name, master, l.Attrs().MTU,
			l.Attrs().Flags&net.FlagUp != 0, hairpin))
	}
	slices.Sort(ports)
	b.WriteString(strings.Join(ports, ""))
	b.WriteString(n.allocations())
	return b.String()
}

// allocations renders the IPAM records of network "weft", ordered by address.
func (n *node) allocations() string {
	n.t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.dataDir, "weft"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		n.t.Fatal(err)
	}
	var recs []netip.Addr
	for _, e := range entries {
		if a, err := netip.ParseAddr(e.Name()); err == nil {
			recs = append(recs, a)
		}
	}
	slices.SortFunc(recs, netip.Addr.Compare)
	var b strings.Builder
	for _, a := range recs {
		data, err := os.ReadFile(filepath.Join(n.dataDir, "weft", a.String()))
		if err != nil {
			n.t.Fatal(err)
		}
		fmt.Fprintf(&b, "ipam %s %s\n", a, strings.ReplaceAll(string(data), "\n", "/"))
	}
	return b.String()
}

func addrs(t testing.TB, h *netlink.Handle, l netlink.Link) string {
	t.Helper()
	as, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	return "[" + strings.Join(out, " ") + "]"
}

// podState renders a pod's interface and IPv4 routes.
func podState(t testing.TB, pod ns.NetNS, ifName string) string {
	t.Helper()
	h := handleIn(t, pod)
	l, err := h.LinkByName(ifName)
	if err != nil {
		return fmt.Sprintf("no %s\n", ifName)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s mtu=%d up=%t\n", ifName, addrs(t, h, l), l.Attrs().MTU, l.Attrs().Flags&net.FlagUp != 0)
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil && !(r.Dst.IP.IsUnspecified() && r.Dst.Mask.String() == "00000000") {
			dst = r.Dst.String()
		}
		if r.Gw != nil {
			fmt.Fprintf(&b, "route %s via %s\n", dst, r.Gw)
		} else {
			fmt.Fprintf(&b, "route %s dev\n", dst)
		}
	}
	return b.String()
}

// serve listens on addr inside n and answers every connection with greeting.
func serve(t testing.TB, n ns.NetNS, addr, greeting string) {
	t.Helper()
	var ln net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, greeting)
			c.Close()
		}
	})
}

// dial connects to addr from inside n and returns what the server said.
func dial(n ns.NetNS, addr string) (string, error) {
	var got []byte
	err := n.Do(func(ns.NetNS) error {
		c, err := (&net.Dialer{Timeout: 3 * time.Second}).Dial("tcp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
			return err
		}
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}

// cniCode returns the code of the CNI error in err's chain, or 0.
func cniCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
