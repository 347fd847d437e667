// Package cni is weft's CNI plugin. It attaches a pod to the node bridge (weft0) with a veth pair,
// gives it an address from the node subnet that weftd leases and writes to subnet.env, routes the
// pod's default through the bridge, and keeps its allocations in a file-locked store (package
// cni/ipam). It follows CNI spec 1.1: ADD, DEL, CHECK, GC, STATUS and VERSION, for configs of
// versions 0.3.1 to 1.1.0. cmd/weft is its main; it links no etcd, gossip or daemon code.
//
// Concurrent invocations are safe: ADD, DEL and CHECK of one container hold a lock of that
// container's (ipam.LockContainer) from start to end, so they never interleave; the IPAM store is
// locked while an address is allocated or released, and GC holds it throughout (the runtime runs
// GC exclusively of ADD and DEL). The bridge is created on the first ADD and tolerates racing
// creators.
//
// Errors carry the spec's codes: 7 for a bad config (naming the field), 4 for a CNI_NETNS that is
// no network namespace (or the plugin's own), 11 ("try again later") when ADD finds weftd not ready
// (subnet file missing, malformed or not WEFT_READY): the runtime retries pod creation, and weftd
// becomes ready on its own. STATUS reports the same condition as 50 ("plugin not available").
package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weft-net/weft/cni/ipam"
	"github.com/weft-net/weft/subnet"
)

// Sentinel errors.
var (
	// ErrNotBridge means the configured bridge name is taken by a link of another kind.
	ErrNotBridge = errors.New("not a bridge")
	// ErrCheck marks a CHECK that found the attachment not as ADD left it.
	ErrCheck = errors.New("check failed")
)

// Versions are the CNI spec versions the plugin implements.
var Versions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

// About is the plugin's description, printed when it runs without CNI_COMMAND.
const About = "weft CNI plugin: pods on the node bridge, addresses from weftd's node subnet"

// Funcs returns the plugin's verbs for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: GC, Status: Status}
}

// notReady is the error of a node whose weftd has not written a usable subnet file.
func notReady(code uint, path string, err error) *types.Error {
	return types.NewError(code, "weftd is not ready", fmt.Sprintf("subnet file %s: %v", path, err))
}

// readEnv reads the subnet file and requires WEFT_READY=true.
func readEnv(path string, code uint) (*subnet.Env, error) {
	env, err := subnet.ReadEnvFile(path)
	if err != nil {
		return nil, notReady(code, path, err)
	}
	if !env.Ready {
		return nil, notReady(code, path, fmt.Errorf("%s is not true", subnet.EnvReady))
	}
	if env.Expired(time.Now()) {
		// weftd has not renewed the lease for a whole TTL: another node may hold the subnet now.
		return nil, notReady(code, path, fmt.Errorf("the subnet lease expired at %s (%s)", env.LeaseExpiry.Format(time.RFC3339), subnet.EnvExpiry))
	}
	return env, nil
}

func storeDir(c *Config) string { return filepath.Join(c.DataDir, c.Name) }

func openStore(c *Config) (*ipam.Store, error) { return ipam.Open(storeDir(c)) }

// lockContainer serialises the commands of one container (see ipam.LockContainer); the caller
// closes the file to release it.
func lockContainer(c *Config, containerID string) (*os.File, error) {
	return ipam.LockContainer(storeDir(c), containerID)
}

// lockedHost takes the container's lock and opens a netlink handle in the host's namespace; the
// function returned closes both.
func lockedHost(c *Config, containerID string) (netlinksafe.Handle, func(), error) {
	lock, err := lockContainer(c, containerID)
	if err != nil {
		return netlinksafe.Handle{}, nil, err
	}
	host, err := hostHandle()
	if err != nil {
		lock.Close()
		return netlinksafe.Handle{}, nil, err
	}
	return host, func() { host.Close(); lock.Close() }, nil
}

// hostHandle opens a netlink handle in the plugin's own (the host's) namespace.
func hostHandle() (netlinksafe.Handle, error) {
	h, err := netlinksafe.NewHandle(syscall.NETLINK_ROUTE)
	if err != nil {
		return netlinksafe.Handle{}, fmt.Errorf("netlink: %w", err)
	}
	return h, nil
}

// badNetNS is the error of a CNI_NETNS the plugin cannot use: code 4, as a necessary environment
// variable with an invalid value.
func badNetNS(path, why string) *types.Error {
	return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS=%q: %s", path, why), "")
}

// openPodNS opens the pod's netns and a netlink handle inside it.
func openPodNS(path string) (ns.NetNS, netlinksafe.Handle, error) {
	podNS, err := ns.GetNS(path)
	if err != nil {
		return nil, netlinksafe.Handle{}, badNetNS(path, "not a network namespace: "+err.Error())
	}
	if err := notOwnNetNS(path); err != nil {
		podNS.Close()
		return nil, netlinksafe.Handle{}, err
	}
	h, err := netlinksafe.NewHandleAt(netns.NsHandle(podNS.Fd()), syscall.NETLINK_ROUTE)
	if err != nil {
		podNS.Close()
		return nil, netlinksafe.Handle{}, fmt.Errorf("netlink in netns %s: %w", path, err)
	}
	return podNS, h, nil
}

// notOwnNetNS refuses a pod netns that is the plugin's own: the host would lose an interface name
// and gain the pod's address and default route.
func notOwnNetNS(path string) error {
	own, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("own netns: %w", err)
	}
	pod, err := os.Stat(path)
	if err != nil {
		return badNetNS(path, err.Error())
	}
	if os.SameFile(own, pod) {
		return badNetNS(path, "the plugin's own network namespace, not the pod's")
	}
	return nil
}

// Add attaches the pod (CNI ADD). Repeating it for the same container and interface returns the
// same address.
func Add(args *skel.CmdArgs) (err error) {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	env, err := readEnv(c.SubnetFile, types.ErrTryAgainLater)
	if err != nil {
		return err
	}
	mtu := c.MTU
	if mtu == 0 {
		mtu = env.MTU
	}
	gw := env.Gateway()

	podNS, pod, err := openPodNS(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	defer pod.Close()
	host, unlock, err := lockedHost(c, args.ContainerID)
	if err != nil {
		return err
	}
	defer unlock()

	a := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	addr, fresh, err := allocate(c, a, env.Subnet)
	if err != nil {
		return err
	}
	hostName := HostVethName(args.ContainerID, args.IfName)
	defer func() {
		if err != nil && fresh {
			err = errors.Join(err, deleteLink(host, hostName), release(c, a))
		}
	}()

	br, err := ensureBridge(host, c.Bridge, netip.PrefixFrom(gw, env.Subnet.Bits()), mtu)
	if err != nil {
		return err
	}
	hostLink, podLink, err := ensureVeth(host, pod, vethSpec{
		hostName: hostName, podName: args.IfName, mtu: mtu, bridge: br, hairpin: c.HairpinMode, podNSFd: int(podNS.Fd()),
	})
	if err != nil {
		return err
	}
	podAddr := netip.PrefixFrom(addr, env.Subnet.Bits())
	if err := configurePod(pod, podLink, podAddr, gw); err != nil {
		return err
	}

	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: br.Name, Mac: br.HardwareAddr.String(), Mtu: mtu},
			{Name: hostName, Mac: hostLink.Attrs().HardwareAddr.String(), Mtu: mtu},
			{Name: args.IfName, Mac: podLink.Attrs().HardwareAddr.String(), Mtu: mtu, Sandbox: args.Netns},
		},
		IPs:    []*current.IPConfig{{Interface: current.Int(2), Address: *ipNet(podAddr), Gateway: gw.AsSlice()}},
		Routes: []*types.Route{{Dst: *ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0)), GW: gw.AsSlice()}},
		DNS:    c.DNS,
	}
	return types.PrintResult(res, c.CNIVersion)
}

// allocate returns a's address, holding the store's lock only for the allocation: the runtime never
// runs two operations on one attachment at once, nor GC alongside ADD or DEL (spec, section 3).
func allocate(c *Config, a ipam.Attachment, sn netip.Prefix) (netip.Addr, bool, error) {
	store, err := openStore(c)
	if err != nil {
		return netip.Addr{}, false, err
	}
	defer store.Close()
	return store.Allocate(a, sn)
}

// lookup returns a's address, if any.
func lookup(c *Config, a ipam.Attachment) (netip.Addr, bool, error) {
	store, err := openStore(c)
	if err != nil {
		return netip.Addr{}, false, err
	}
	defer store.Close()
	return store.Get(a)
}

// release frees a's addresses.
func release(c *Config, a ipam.Attachment) error {
	store, err := openStore(c)
	if err != nil {
		return err
	}
	defer store.Close()
	_, err = store.Release(a)
	return err
}

// Del detaches the pod (CNI DEL): it removes the veth pair and frees the address. It needs neither
// the subnet file nor the netns, and what is already gone is no error.
func Del(args *skel.CmdArgs) error {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	host, unlock, err := lockedHost(c, args.ContainerID)
	if err != nil {
		return err
	}
	defer unlock()
	if err := deleteLink(host, HostVethName(args.ContainerID, args.IfName)); err != nil {
		return err
	}
	return release(c, ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName})
}

// Check verifies the attachment against prevResult and the IPAM record (CNI CHECK): the host veth
// on the bridge, the pod's interface with its address, and every route of prevResult in the pod.
func Check(args *skel.CmdArgs) error {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if c.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid network config: CHECK needs prevResult", "")
	}
	podIf, podIP, err := prevAttachment(c.PrevResult, args.IfName)
	if err != nil {
		return err
	}
	lock, err := lockContainer(c, args.ContainerID)
	if err != nil {
		return err
	}
	defer lock.Close()

	recorded, ok, err := lookup(c, ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no address is allocated to %s/%s", ErrCheck, args.ContainerID, args.IfName)
	}
	if recorded != podIP.Addr() {
		return fmt.Errorf("%w: prevResult has %s but %s is allocated", ErrCheck, podIP.Addr(), recorded)
	}

	host, err := hostHandle()
	if err != nil {
		return err
	}
	defer host.Close()
	podNS, pod, err := openPodNS(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	defer pod.Close()

	br, err := host.LinkByName(c.Bridge)
	if err != nil {
		return fmt.Errorf("%w: bridge %s: %w", ErrCheck, c.Bridge, err)
	}
	hostName := HostVethName(args.ContainerID, args.IfName)
	hostLink, err := host.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("%w: host veth %s: %w", ErrCheck, hostName, err)
	}
	if hostLink.Attrs().MasterIndex != br.Attrs().Index {
		return fmt.Errorf("%w: host veth %s is not attached to %s", ErrCheck, hostName, c.Bridge)
	}
	podLink, err := pod.LinkByName(args.IfName)
	if err != nil {
		return fmt.Errorf("%w: pod interface %s: %w", ErrCheck, args.IfName, err)
	}
	if !isPair(hostLink, podLink) {
		return fmt.Errorf("%w: pod interface %s is not the peer of %s", ErrCheck, args.IfName, hostName)
	}
	if podIf.Mac != "" && podIf.Mac != podLink.Attrs().HardwareAddr.String() {
		return fmt.Errorf("%w: pod interface %s has MAC %s, prevResult %s", ErrCheck, args.IfName, podLink.Attrs().HardwareAddr, podIf.Mac)
	}
	for _, l := range []netlink.Link{br, hostLink, podLink} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("%w: %s is down", ErrCheck, l.Attrs().Name)
		}
	}
	if err := checkAddr(pod, podLink, podIP); err != nil {
		return err
	}
	return checkRoutes(pod, c.PrevResult.Routes)
}

// prevAttachment finds the pod's interface and its IPv4 address in prevResult.
func prevAttachment(r *current.Result, ifName string) (*current.Interface, netip.Prefix, error) {
	for _, ipc := range r.IPs {
		if ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(r.Interfaces) {
			continue
		}
		iface := r.Interfaces[*ipc.Interface]
		if iface.Name != ifName || iface.Sandbox == "" {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipc.Address.IP.To4())
		ones, bits := ipc.Address.Mask.Size()
		if ok && bits == 32 {
			return iface, netip.PrefixFrom(addr, ones), nil
		}
	}
	return nil, netip.Prefix{}, fmt.Errorf("%w: prevResult has no IPv4 address on %s", ErrCheck, ifName)
}

func checkAddr(pod netlinksafe.Handle, link netlink.Link, want netip.Prefix) error {
	addrs, err := pod.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("%s: list addresses: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		if ok && netip.PrefixFrom(ip, ones) == want {
			return nil
		}
	}
	return fmt.Errorf("%w: pod interface %s lacks %s", ErrCheck, link.Attrs().Name, want)
}

func checkRoutes(pod netlinksafe.Handle, want []*types.Route) error {
	routes, err := pod.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, w := range want {
		found := false
		for _, r := range routes {
			dst := "0.0.0.0/0"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			if dst == w.Dst.String() && r.Gw.Equal(w.GW) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: pod has no route to %s via %s", ErrCheck, w.Dst.String(), w.GW)
		}
	}
	return nil
}

// GC releases every allocation and removes every host veth on the bridge that belongs to no
// attachment in cni.dev/valid-attachments (CNI GC), including leaks the runtime never cached.
// Without the key it does nothing. Host veths are recognised by their name (HostVethName's shape)
// and their master (the configured bridge).
func GC(args *skel.CmdArgs) error {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if c.ValidAttachments == nil {
		return nil
	}
	valid := make(map[ipam.Attachment]bool, len(c.ValidAttachments))
	validVeths := make(map[string]bool, len(c.ValidAttachments))
	for _, a := range c.ValidAttachments {
		valid[ipam.Attachment{ContainerID: a.ContainerID, IfName: a.IfName}] = true
		validVeths[HostVethName(a.ContainerID, a.IfName)] = true
	}
	host, err := hostHandle()
	if err != nil {
		return err
	}
	defer host.Close()
	store, err := openStore(c)
	if err != nil {
		return err
	}
	defer store.Close()

	var errs []error
	br, err := host.LinkByName(c.Bridge)
	var links []netlink.Link
	if err == nil {
		links, err = host.LinkList()
	}
	switch {
	case err == nil:
		for _, l := range links {
			name := l.Attrs().Name
			if _, veth := l.(*netlink.Veth); !veth || !isHostVethName(name) || validVeths[name] || l.Attrs().MasterIndex != br.Attrs().Index {
				continue
			}
			errs = append(errs, deleteLink(host, name))
		}
	case !isNotFound(err):
		errs = append(errs, fmt.Errorf("host veths on %s: %w", c.Bridge, err))
	}
	_, err = store.Retain(func(a ipam.Attachment) bool { return valid[a] })
	return errors.Join(append(errs, err)...)
}

// Status reports whether the plugin can serve ADD (CNI STATUS): code 50 while the subnet file is
// missing, malformed or not WEFT_READY=true.
func Status(args *skel.CmdArgs) error {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	_, err = readEnv(c.SubnetFile, types.ErrPluginNotAvailable)
	return err
}
