package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// reap waits for cmd to end and records its exit state for WeftdExit.
func (l *Lab) reap(cmd *exec.Cmd) {
	// The error only repeats the exit state, which is recorded; the output is in the process's log.
	_ = cmd.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exits == nil {
		l.exits = make(map[int]*os.ProcessState)
	}
	l.exits[cmd.Process.Pid] = cmd.ProcessState
}

// WeftdExit reports whether the weftd that StartWeftd last started on node has exited, and with
// which exit code (-1 when a signal ended it).
func (l *Lab) WeftdExit(node *Node) (code int, exited bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.exits[l.st.Procs["weftd/"+node.Name]]
	if !ok {
		return 0, false
	}
	return st.ExitCode(), true
}

// AddNetns creates an empty namespace named after the lab's prefix and name, removed by Down, and
// returns its path: a pod sandbox for CNIAdd.
func (l *Lab) AddNetns(name string) (string, error) {
	full := l.st.Prefix + name
	if _, err := l.createNetns(full); err != nil {
		return "", err
	}
	return filepath.Join("/run/netns", full), nil
}

func cniRuntime(containerID, netnsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: "eth0"}
}

// CNIAdd attaches the namespace at netnsPath as container containerID through node's conflist, as
// a runtime does, and returns the pod's address. Ending ctx kills the plugin that runs (SIGKILL).
func (l *Lab) CNIAdd(ctx context.Context, node *Node, containerID, netnsPath string) (netip.Addr, error) {
	nodeNS, err := l.netns(node.Netns)
	if err != nil {
		return netip.Addr{}, err
	}
	cfg, list, err := l.cni(node)
	if err != nil {
		return netip.Addr{}, err
	}
	var addr netip.Addr
	err = nodeNS.Do(func(ns.NetNS) error {
		r, err := cfg.AddNetworkList(ctx, list, cniRuntime(containerID, netnsPath))
		if err != nil {
			return err
		}
		res, err := current.NewResultFromResult(r)
		if err != nil {
			return err
		}
		if len(res.IPs) == 0 {
			return fmt.Errorf("result has no IP")
		}
		addr, _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
		return nil
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("CNI ADD %s on %s: %w", containerID, node.Name, err)
	}
	return addr, nil
}

// CNIDel detaches container containerID through node's conflist.
func (l *Lab) CNIDel(ctx context.Context, node *Node, containerID, netnsPath string) error {
	nodeNS, err := l.netns(node.Netns)
	if err != nil {
		return err
	}
	cfg, list, err := l.cni(node)
	if err != nil {
		return err
	}
	if err := nodeNS.Do(func(ns.NetNS) error {
		return cfg.DelNetworkList(ctx, list, cniRuntime(containerID, netnsPath))
	}); err != nil {
		return fmt.Errorf("CNI DEL %s on %s: %w", containerID, node.Name, err)
	}
	return nil
}

// CNIGC runs CNI GC on node's conflist with the given containers (interface eth0) as the valid
// attachments.
func (l *Lab) CNIGC(ctx context.Context, node *Node, valid []string) error {
	nodeNS, err := l.netns(node.Netns)
	if err != nil {
		return err
	}
	cfg, list, err := l.cni(node)
	if err != nil {
		return err
	}
	args := &libcni.GCArgs{}
	for _, id := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: id, IfName: "eth0"})
	}
	if err := nodeNS.Do(func(ns.NetNS) error { return cfg.GCNetworkList(ctx, list, args) }); err != nil {
		return fmt.Errorf("CNI GC on %s: %w", node.Name, err)
	}
	return nil
}

// VTEPMAC returns the MAC address node's VXLAN device carries.
func (l *Lab) VTEPMAC(node *Node) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := l.WithHandle(node, func(h *netlink.Handle) error {
		link, err := h.LinkByName(Device)
		if err != nil {
			return err
		}
		mac = link.Attrs().HardwareAddr
		return nil
	})
	return mac, err
}

// WithHandle calls fn with a netlink handle in node's namespace.
func (l *Lab) WithHandle(node *Node, fn func(*netlink.Handle) error) error {
	n, err := l.netns(node.Netns)
	if err != nil {
		return err
	}
	return withHandle(n, fn)
}
