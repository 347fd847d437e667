package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/nsutil"
)

// writeConflist writes node's conflist: the shipped template with the weft plugin pointed at the
// node's own subnet file and IPAM directory, since the lab's nodes share one filesystem.
func (l *Lab) writeConflist(node *Node) error {
	raw, err := os.ReadFile(l.st.Conflist)
	if err != nil {
		return err
	}
	var list map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("%s: %w", l.st.Conflist, err)
	}
	plugins, _ := list["plugins"].([]any)
	found := false
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == "weft" {
			m["subnetFile"] = filepath.Join(node.Dir, "subnet.env")
			m["dataDir"] = filepath.Join(node.Dir, "ipam")
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s: no plugin of type weft", l.st.Conflist)
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(node.Dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.conflistPath(node), out, 0o644)
}

func (l *Lab) conflistPath(node *Node) string { return filepath.Join(node.Dir, "10-weft.conflist") }

func (l *Lab) cni(node *Node) (*libcni.CNIConfig, *libcni.NetworkConfigList, error) {
	list, err := libcni.ConfListFromFile(l.conflistPath(node))
	if err != nil {
		return nil, nil, err
	}
	ex := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	return libcni.NewCNIConfigWithCacheDir([]string{l.st.BinDir}, filepath.Join(node.Dir, "cni-cache"), ex), list, nil
}

func (l *Lab) runtimeConf(pod *Pod, ports []PortMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: pod.Name, NetNS: filepath.Join("/run/netns", pod.Netns), IfName: "eth0"}
	if len(ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": ports}
	}
	return rt
}

// PortMapping is a hostPort mapping handed to the portmap plugin.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// AddPod creates a pod namespace and attaches it through the node's conflist, as a runtime does.
func (l *Lab) AddPod(ctx context.Context, node *Node, ports ...PortMapping) (*Pod, error) {
	l.mu.Lock()
	n := 0
	for _, p := range l.st.Pods {
		if p.Node == node.Name {
			n++
		}
	}
	l.mu.Unlock()
	pod := &Pod{Name: fmt.Sprintf("%s-pod%d", node.Name, n+1), Node: node.Name}
	pod.Netns = fmt.Sprintf("%sn%sp%d", l.st.Prefix, node.Name[len("node"):], n+1)
	if _, err := l.createNetns(pod.Netns); err != nil {
		return nil, err
	}
	nodeNS, err := l.netns(node.Netns)
	if err != nil {
		return nil, err
	}
	cfg, list, err := l.cni(node)
	if err != nil {
		return nil, err
	}
	var res *current.Result
	err = nodeNS.Do(func(ns.NetNS) error {
		r, err := cfg.AddNetworkList(ctx, list, l.runtimeConf(pod, ports))
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s: %w", pod.Name, err)
	}
	if len(res.IPs) == 0 {
		return nil, fmt.Errorf("CNI ADD %s: result has no IP", pod.Name)
	}
	pod.IP, _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	l.mu.Lock()
	l.st.Pods = append(l.st.Pods, pod)
	err = l.save()
	l.mu.Unlock()
	return pod, err
}

// DelPod detaches a pod through the node's conflist, as a runtime does, and removes its namespace
// and its record.
func (l *Lab) DelPod(ctx context.Context, pod *Pod) error {
	var node *Node
	l.mu.Lock()
	for _, n := range l.st.Nodes {
		if n.Name == pod.Node {
			node = n
		}
	}
	l.mu.Unlock()
	if node == nil {
		return fmt.Errorf("pod %s: node %s unknown", pod.Name, pod.Node)
	}
	nodeNS, err := l.netns(node.Netns)
	if err != nil {
		return err
	}
	cfg, list, err := l.cni(node)
	if err != nil {
		return err
	}
	if err := nodeNS.Do(func(ns.NetNS) error {
		return cfg.DelNetworkList(ctx, list, l.runtimeConf(pod, nil))
	}); err != nil {
		return fmt.Errorf("CNI DEL %s: %w", pod.Name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.ns[pod.Netns]; ok {
		n.Close()
		delete(l.ns, pod.Netns)
	}
	if err := nsutil.Remove(nsutil.Path(pod.Netns)); err != nil {
		return err
	}
	l.st.Netns = slices.DeleteFunc(l.st.Netns, func(n string) bool { return n == pod.Netns })
	l.st.Pods = slices.DeleteFunc(l.st.Pods, func(p *Pod) bool { return p.Name == pod.Name })
	return l.save()
}
