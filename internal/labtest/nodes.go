package labtest

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
)

// WeftdExit reports whether the weftd that l last started on node has exited, and with which exit
// code (-1 when a signal ended it).
func WeftdExit(l *lab.Lab, node *lab.Node) (code int, exited bool) {
	st, ok := l.Exited(lab.WeftdProc(node))
	if !ok {
		return 0, false
	}
	return st.ExitCode(), true
}

// AddNetns creates an empty namespace named after l's prefix and name, removed when t ends, and
// returns its path: a pod sandbox for CNIAdd.
func AddNetns(t *testing.T, l *lab.Lab, name string) string {
	t.Helper()
	full := l.State().Prefix + name
	n, err := nsutil.Create(full)
	if err != nil {
		t.Fatalf("create netns %s: %v", full, err)
	}
	path := n.Path()
	n.Close()
	t.Cleanup(func() {
		if err := nsutil.Remove(path); err != nil {
			t.Errorf("remove netns %s: %v", full, err)
		}
	})
	return path
}

func runtimeConf(containerID, netnsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: "eth0"}
}

// inCNI calls fn inside node's namespace with node's CNI configuration and conflist.
func inCNI(l *lab.Lab, node *lab.Node, fn func(*libcni.CNIConfig, *libcni.NetworkConfigList) error) error {
	nodeNS, err := l.NodeNS(node)
	if err != nil {
		return err
	}
	cfg, list, err := l.CNI(node)
	if err != nil {
		return err
	}
	return nodeNS.Do(func(ns.NetNS) error { return fn(cfg, list) })
}

// CNIAdd attaches the namespace at netnsPath as container containerID through node's conflist, as
// a runtime does, and returns the pod's address. Ending ctx kills the plugin that runs (SIGKILL).
func CNIAdd(ctx context.Context, l *lab.Lab, node *lab.Node, containerID, netnsPath string) (netip.Addr, error) {
	var addr netip.Addr
	err := inCNI(l, node, func(cfg *libcni.CNIConfig, list *libcni.NetworkConfigList) error {
		r, err := cfg.AddNetworkList(ctx, list, runtimeConf(containerID, netnsPath))
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
func CNIDel(ctx context.Context, l *lab.Lab, node *lab.Node, containerID, netnsPath string) error {
	err := inCNI(l, node, func(cfg *libcni.CNIConfig, list *libcni.NetworkConfigList) error {
		return cfg.DelNetworkList(ctx, list, runtimeConf(containerID, netnsPath))
	})
	if err != nil {
		return fmt.Errorf("CNI DEL %s on %s: %w", containerID, node.Name, err)
	}
	return nil
}

// CNIGC runs CNI GC on node's conflist with the given containers (interface eth0) as the valid
// attachments.
func CNIGC(ctx context.Context, l *lab.Lab, node *lab.Node, valid []string) error {
	args := &libcni.GCArgs{}
	for _, id := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: id, IfName: "eth0"})
	}
	err := inCNI(l, node, func(cfg *libcni.CNIConfig, list *libcni.NetworkConfigList) error {
		return cfg.GCNetworkList(ctx, list, args)
	})
	if err != nil {
		return fmt.Errorf("CNI GC on %s: %w", node.Name, err)
	}
	return nil
}
