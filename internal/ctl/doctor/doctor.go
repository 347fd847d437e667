// Package doctor is weftctl doctor: it checks one node against what its files, etcd, weftd and the
// kernel say, and prints each problem with its fix.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/ctl/admin"
	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/peers"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/vxlan"
)

// finding is the outcome of one doctor check.
type finding struct {
	Check string `json:"check"`
	// Status is ok, problem or skipped.
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctor gathers what the node's files, etcd, weftd and the kernel say, and checks it.
type doctor struct {
	env        *cli.Env
	ef         cli.EtcdFlags
	subnetFile string
	device     string
	healthAddr string
	// routeProtocol marks weftd's routes.
	routeProtocol int

	findings []finding

	senv *subnet.Env
	// local is this node's subnet: subnet.env's, or the lease holding the device's address.
	local   netip.Prefix
	cfg     *subnet.Config
	entries []admin.Entry
	etcdOK  bool
	dp      *nodeapi.Peers
}

func (d *doctor) ok(check, format string, args ...any) {
	d.findings = append(d.findings, finding{Check: check, Status: "ok", Detail: fmt.Sprintf(format, args...)})
}

func (d *doctor) problem(check, detail, fix string) {
	d.findings = append(d.findings, finding{Check: check, Status: "problem", Detail: detail, Fix: fix})
}

func (d *doctor) skip(check, why string) {
	d.findings = append(d.findings, finding{Check: check, Status: "skipped", Detail: why})
}

func Run(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "doctor", "[flags]")
	d := &doctor{env: env}
	d.ef.Register(fs)
	fs.StringVar(&d.subnetFile, "subnet-file", subnet.DefaultEnvFile, "the subnet.env weftd writes (its -subnet-file)")
	fs.StringVar(&d.device, "device", "", "the VXLAN device (weftd's -device; default weft.<VNI> of the network config)")
	fs.StringVar(&d.healthAddr, "health-addr", nodeapi.DefaultHealthAddr, "weftd's health address (its -health-addr)")
	fs.IntVar(&d.routeProtocol, "route-protocol", vxlan.DefaultRouteProtocol, "the protocol number of weftd's routes (its -route-protocol)")
	out := cli.OutputFlag(fs)
	if _, err := cli.Parse(env, fs, args); err != nil {
		return err
	}
	if _, err := d.ef.Config(); err != nil {
		return err
	}
	d.checkSubnetEnv()
	d.checkEtcd(ctx)
	d.checkWeftd(ctx)
	d.checkLease()
	d.checkKernel()
	d.checkRules()
	d.checkGossip()

	problems := 0
	for _, f := range d.findings {
		if f.Status == "problem" {
			problems++
		}
	}
	if out.Structured() {
		if err := out.Encode(env.Stdout, struct {
			Problems int       `json:"problems"`
			Findings []finding `json:"findings"`
		}{problems, d.findings}); err != nil {
			return err
		}
	} else if err := writeFindings(env.Stdout, d.findings, problems); err != nil {
		return err
	}
	if problems > 0 {
		return fmt.Errorf("doctor: %d %w", problems, cli.ErrProblems)
	}
	return nil
}

func writeFindings(w io.Writer, findings []finding, problems int) error {
	t := cli.NewTable(w, "STATUS", "CHECK", "DETAIL")
	for _, f := range findings {
		status := f.Status
		if status == "problem" {
			status = "PROBLEM"
		}
		t.Row(status, f.Check, f.Detail)
		if f.Fix != "" {
			t.Note("fix: " + f.Fix)
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if problems == 0 {
		fmt.Fprintln(w, "\nNo problems found.")
	} else {
		fmt.Fprintf(w, "\n%d problems found.\n", problems)
	}
	return nil
}

const fixWeftdRunning = "check that weftd runs (systemctl status weftd, or the weft pod's log)"

func (d *doctor) checkSubnetEnv() {
	const check = "subnet.env"
	e, err := subnet.ReadEnvFile(d.subnetFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.problem(check, d.subnetFile+" does not exist", "weftd writes it once it holds a lease: "+fixWeftdRunning+" and that its -subnet-file is "+d.subnetFile)
		return
	case err != nil:
		d.problem(check, err.Error(), "weftd rewrites it at start: restart weftd")
		return
	}
	d.senv, d.local = e, e.Subnet
	if !e.Ready {
		d.problem(check, fmt.Sprintf("%s: %s of %s, MTU %d, but WEFT_READY=false", d.subnetFile, e.Subnet, e.Network, e.MTU),
			"weftd is not ready: the weftd check below, or weftd's log, says why")
		return
	}
	d.ok(check, "%s: %s of %s, MTU %d, ready", d.subnetFile, e.Subnet, e.Network, e.MTU)
}

func (d *doctor) checkEtcd(ctx context.Context) {
	const check = "etcd"
	const fix = "check -etcd-endpoints, the TLS flags and -etcd-prefix (weftd's own), and etcd's health: etcdctl endpoint health"
	s, err := d.ef.Open()
	if err != nil {
		d.problem(check, err.Error(), fix)
		return
	}
	defer s.Close()
	cfg, cfgErr, err := admin.ReadConfig(ctx, s)
	if err != nil {
		d.problem(check, err.Error(), fix)
		return
	}
	if d.entries, _, err = admin.ReadKeys(ctx, s); err != nil {
		d.problem(check, err.Error(), fix)
		return
	}
	d.etcdOK = true
	if cfgErr != nil {
		d.problem("network config", cfgErr.Error(), "store a valid config: weftctl config set FILE")
		return
	}
	d.cfg = cfg
	d.ok(check, "answers; %d subnet keys under %s", len(d.entries), s.M.SubnetsPrefix())
	if e := d.senv; e != nil && e.Network != cfg.Network {
		d.problem("network config", fmt.Sprintf("etcd's Network is %s, subnet.env's %s", cfg.Network, e.Network),
			"weftd reads the config at start only: restart weftd, then the pods started before")
	}
}

func (d *doctor) checkWeftd(ctx context.Context) {
	const check = "weftd"
	dp, err := peers.Fetch(ctx, d.healthAddr)
	if err != nil {
		d.problem(check, err.Error(), "weftd serves /debug/peers on its -health-addr ("+d.healthAddr+" here): "+fixWeftdRunning)
		return
	}
	d.dp = dp
	code, body, err := peers.GetHealth(ctx, d.healthAddr, "/readyz")
	switch {
	case err != nil:
		d.problem(check, err.Error(), fixWeftdRunning)
	case code != http.StatusOK:
		d.problem(check, fmt.Sprintf("node %s is not ready: %s", dp.Node, strings.TrimSpace(string(body))), "weftd's log says why; `weftctl peers` shows its peer view")
	default:
		d.ok(check, "node %s ready, %d peers", dp.Node, len(dp.Peers))
	}
}

// ownEntry returns the etcd key of this node's subnet.
func (d *doctor) ownEntry() *admin.Entry {
	for i := range d.entries {
		if e := &d.entries[i]; d.local.IsValid() && e.Subnet == d.local {
			return e
		}
	}
	return nil
}

func (d *doctor) checkLease() {
	const check = "lease"
	switch {
	case d.senv == nil:
		d.skip(check, "no subnet.env to compare with")
		return
	case !d.etcdOK:
		d.skip(check, "etcd does not answer")
		return
	}
	sn := d.senv.Subnet
	e := d.ownEntry()
	switch {
	case e == nil:
		d.problem(check, fmt.Sprintf("subnet.env says %s, but etcd has no key for it", sn),
			"the node lost its lease; weftd takes it back while it is free (see weftd's log); if another node took it, restart weftd and then this node's pods")
	case e.Err != nil:
		d.problem(check, fmt.Sprintf("the key of %s is malformed: %v", sn, e.Err), "weftd rewrites its own key when it acquires: restart weftd, or reclaim the key")
	case e.Lease == nil:
		d.problem(check, fmt.Sprintf("%s is reserved for %q, which has not taken it yet", sn, e.Node), "weftd takes a reservation when it acquires: restart weftd")
	case d.dp != nil && e.Lease.Attrs.NodeName != "" && e.Lease.Attrs.NodeName != d.dp.Node:
		d.problem(check, fmt.Sprintf("%s is held by node %q, but this is %q", sn, e.Lease.Attrs.NodeName, d.dp.Node),
			"two nodes run on one subnet: restart weftd here (it takes a free subnet), then this node's pods")
	default:
		d.ok(check, "%s held by %s (%s), expires %s", sn, e.Holder(), e.Lease.Attrs.PublicIP, e.Expires(d.env.Clock()))
	}
}

// expectedPeers are /debug/peers' peers or, without weftd, the etcd leases of the other nodes.
func (d *doctor) expectedPeers() ([]backend.Peer, string) {
	var out []backend.Peer
	if d.dp != nil {
		for _, p := range d.dp.Peers {
			mac, _ := net.ParseMAC(p.VtepMAC)
			out = append(out, backend.Peer{Name: p.Name, Subnet: p.Subnet, PublicIP: p.PublicIP, VtepMAC: mac})
		}
		return out, "weftd's peer view"
	}
	if !d.etcdOK || !d.local.IsValid() {
		return nil, ""
	}
	for _, e := range d.entries {
		if l := e.Lease; l != nil && !l.Subnet.Overlaps(d.local) {
			name := l.Attrs.NodeName
			if name == "" {
				name = l.Attrs.PublicIP.String()
			}
			out = append(out, backend.Peer{Name: name, Subnet: l.Subnet, PublicIP: l.Attrs.PublicIP, VtepMAC: l.Attrs.VtepMAC})
		}
	}
	return out, "the etcd leases (weftd's peer view is unavailable)"
}

func (d *doctor) handle() (*netlink.Handle, func(), error) {
	if d.env.Netlink != nil {
		return d.env.Netlink, func() {}, nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, nil, err
	}
	return h, h.Close, nil
}

func (d *doctor) deviceName() string {
	switch {
	case d.device != "":
		return d.device
	case d.cfg != nil:
		return vxlan.DeviceName(d.cfg.Backend.VNI)
	}
	return vxlan.DeviceName(subnet.DefaultVNI)
}

func (d *doctor) checkKernel() {
	h, done, err := d.handle()
	if err != nil {
		d.problem("device", fmt.Sprintf("netlink: %v", err), "run weftctl doctor as root on the node (in the host network namespace)")
		return
	}
	defer done()
	name := d.deviceName()
	link, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		d.problem("device", name+" does not exist", "weftd creates it at start: "+fixWeftdRunning+"; give -device when weftd runs with its own -device")
		d.skip("peers", "no device")
		return
	case err != nil:
		d.problem("device", fmt.Sprintf("%s: %v", name, err), "run weftctl doctor as root on the node")
		d.skip("peers", "no device")
		return
	}
	vx, isVXLAN := link.(*netlink.Vxlan)
	if !isVXLAN {
		d.problem("device", fmt.Sprintf("%s is a %s link, not vxlan", name, link.Type()), "delete it (ip link del "+name+") and restart weftd, which creates it")
		d.skip("peers", "no VXLAN device")
		return
	}
	d.checkDevice(h, vx)
	if !d.local.IsValid() {
		d.local = d.leaseOfDevice(h, vx)
	}
	own := vxlan.Ownership{Device: vx.Index, Underlay: vx.VtepDevIndex, RouteProtocol: d.routeProtocol}
	owned, err := own.Dump(h)
	if err != nil {
		d.problem("peers", fmt.Sprintf("%s: %v", vx.Name, err), "run weftctl doctor as root on the node")
		return
	}
	d.checkPeers(own, &owned)
}

func (d *doctor) checkDevice(h *netlink.Handle, vx *netlink.Vxlan) {
	name, a := vx.Name, vx.Attrs()
	var bad []string
	fix := "weftd repairs its device at its next resync (-resync-interval): if this persists, restart weftd"
	if a.Flags&net.FlagUp == 0 {
		bad = append(bad, "down")
	}
	if c := d.cfg; c != nil {
		if vx.VxlanId != c.Backend.VNI {
			bad = append(bad, fmt.Sprintf("VNI %d, the config says %d", vx.VxlanId, c.Backend.VNI))
		}
		if vx.Port != c.Backend.Port {
			bad = append(bad, fmt.Sprintf("port %d, the config says %d", vx.Port, c.Backend.Port))
		}
	}
	if e := d.senv; e != nil {
		if a.MTU != e.MTU {
			bad = append(bad, fmt.Sprintf("MTU %d, but subnet.env gives pods %d", a.MTU, e.MTU))
			fix = "restart weftd (it sets the device MTU and rewrites subnet.env), then the pods started with the old MTU"
		}
		if !hasAddr(h, vx, netip.PrefixFrom(e.Subnet.Addr(), 32)) {
			bad = append(bad, fmt.Sprintf("lacks its address %s/32", e.Subnet.Addr()))
		}
	}
	if under, err := h.LinkByIndex(vx.VtepDevIndex); err == nil && a.MTU > under.Attrs().MTU-subnet.VXLANOverheadIPv4 {
		bad = append(bad, fmt.Sprintf("MTU %d exceeds underlay %s's MTU %d minus VXLAN's %d bytes: large packets are dropped",
			a.MTU, under.Attrs().Name, under.Attrs().MTU, subnet.VXLANOverheadIPv4))
		fix = fmt.Sprintf("set Backend.MTU in the network config (weftctl config set) or weftd's -mtu to at most %d, or to 0 for the underlay MTU minus %d; restart weftd, then the pods",
			under.Attrs().MTU-subnet.VXLANOverheadIPv4, subnet.VXLANOverheadIPv4)
	}
	if own := d.ownEntry(); own != nil && own.Lease != nil {
		l := own.Lease.Attrs
		if !strings.EqualFold(a.HardwareAddr.String(), l.VtepMAC.String()) {
			bad = append(bad, fmt.Sprintf("MAC %s, but the lease publishes %s", a.HardwareAddr, l.VtepMAC))
		}
		if src, ok := netip.AddrFromSlice(vx.SrcAddr); ok && src.Unmap() != l.PublicIP {
			bad = append(bad, fmt.Sprintf("local IP %s, but the lease publishes %s", src.Unmap(), l.PublicIP))
		}
	}
	if len(bad) > 0 {
		d.problem("device", name+": "+strings.Join(bad, "; "), fix)
		return
	}
	d.ok("device", "%s up, VNI %d, port %d, MTU %d, MAC %s", name, vx.VxlanId, vx.Port, a.MTU, a.HardwareAddr)
}

// leaseOfDevice is the subnet of the lease that holds the device's address.
func (d *doctor) leaseOfDevice(h *netlink.Handle, vx *netlink.Vxlan) netip.Prefix {
	addrs, err := h.AddrList(vx, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		for _, e := range d.entries {
			if e.Lease != nil && e.Subnet.Contains(ip.Unmap()) {
				return e.Subnet
			}
		}
	}
	return netip.Prefix{}
}

func hasAddr(h *netlink.Handle, link netlink.Link, want netip.Prefix) bool {
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if netip.PrefixFrom(ip.Unmap(), ones) == want {
			return true
		}
	}
	return false
}

func (d *doctor) checkPeers(own vxlan.Ownership, owned *vxlan.Owned) {
	peers, source := d.expectedPeers()
	if source == "" {
		d.skip("peers", "neither weftd's peer view nor etcd's leases are available")
		return
	}
	fix := "weftd restores peer entries on every kernel change and every -resync-interval (30s by default); if this persists, " +
		"look for \"programming peers\" errors in weftd's log (a route conflict shows there) and compare with weftctl peers"
	good := 0
	for _, p := range peers {
		if bad := owned.Problems(own, p); len(bad) > 0 {
			d.problem("peer "+p.Name, fmt.Sprintf("%s at %s: %s", p.Subnet, p.PublicIP, strings.Join(bad, "; ")), fix)
			continue
		}
		good++
	}
	if stale := owned.Stale(peers); len(stale) > 0 {
		d.problem("stale entries", strings.Join(stale, ", ")+": no peer has them",
			"weftd deletes the entries of departed peers at its next resync; if they stay, restart weftd")
	}
	if good > 0 || len(peers) == 0 {
		d.ok("peers", "%d of %d peers from %s have their route, neighbour and FDB entries", good, len(peers), source)
	}
}

func (d *doctor) checkRules() {
	ipt := d.env.IPTables
	if ipt == nil {
		t, err := iptables.New()
		if err != nil {
			d.problem("iptables", fmt.Sprintf("cannot run iptables: %v", err), "install iptables (weftd needs it too)")
			return
		}
		ipt = t
	}
	chains := [][3]string{{"filter", "FORWARD", nodeapi.ChainForward}}
	if d.senv == nil || d.senv.IPMasq {
		chains = append(chains, [3]string{"nat", "POSTROUTING", nodeapi.ChainMasq})
	}
	const fix = "weftd restores its chains every -rules-interval (10s by default); if they keep vanishing, another tool " +
		"(firewalld, a script flushing the tables) removes them"
	for _, c := range chains {
		table, parent, chain := c[0], c[1], c[2]
		check := "iptables " + table + "/" + chain
		exists, err := ipt.ChainExists(table, chain)
		if err != nil {
			d.problem(check, err.Error(), "run weftctl doctor as root on the node")
			continue
		}
		if !exists {
			d.problem(check, "chain missing", fix)
			continue
		}
		rules, err := ipt.List(table, chain)
		if err != nil {
			d.problem(check, err.Error(), "run weftctl doctor as root on the node")
			continue
		}
		jumps, err := ipt.List(table, parent)
		if err != nil {
			d.problem(check, err.Error(), "run weftctl doctor as root on the node")
			continue
		}
		jumped := slices.ContainsFunc(jumps, func(r string) bool { return strings.HasSuffix(r, "-j "+chain) })
		switch {
		case len(rules) <= 1:
			d.problem(check, "chain empty", fix)
		case !jumped:
			d.problem(check, fmt.Sprintf("%s does not jump to %s", parent, chain), fix)
		default:
			d.ok(check, "%d rules, jumped to from %s", len(rules)-1, parent)
		}
	}
}

func (d *doctor) checkGossip() {
	if d.dp == nil {
		d.skip("gossip", "weftd's peer view is unavailable")
		return
	}
	port := subnet.DefaultPort
	if d.cfg != nil {
		port = d.cfg.Backend.Port
	}
	problems := 0
	for i := range d.dp.Peers {
		p := &d.dp.Peers[i]
		check := "peer " + p.Name
		switch {
		case p.Gossip == nil && p.Etcd.NodeName != "":
			problems++
			d.problem(check, "weft node without a gossip member: its liveness and newer attributes are unknown",
				"check that TCP and UDP 7946 pass between the nodes and that both run with the same gossip key and -gossip-label")
		case p.Gossip != nil && p.Gossip.Status != nodeapi.MemberAlive:
			problems++
			d.problem(check, fmt.Sprintf("gossip member %s: the node is down or cut off; its routes stay until its lease expires", p.Gossip.Status),
				fmt.Sprintf("if %s is gone for good, free its subnet: weftctl leases reclaim %s; else check weftd on %s", p.Name, p.Subnet, p.Name))
		}
		if p.Probe != nil && !p.Probe.Reachable {
			problems++
			d.problem(check, fmt.Sprintf("the overlay probe to %s's VTEP address %s goes unanswered", p.Name, p.Subnet.Addr()),
				fmt.Sprintf("check that UDP %d passes between this node and %s (firewalls, security groups) and that both nodes use the same VNI", port, p.PublicIP))
		}
	}
	alive := 0
	for _, m := range d.dp.Members {
		if m.Status == nodeapi.MemberAlive {
			alive++
		}
		if m.Claim == nodeapi.ClaimRejected {
			problems++
			d.problem("gossip "+m.Name, fmt.Sprintf("claim of %s rejected: %s", m.Subnet, m.Reason),
				"the member claims a subnet etcd does not give it: restart weftd on "+m.Name)
		}
	}
	if problems == 0 {
		d.ok("gossip", "%d of %d members alive; no gossip or probe problem among %d peers", alive, len(d.dp.Members), len(d.dp.Peers))
	}
}
