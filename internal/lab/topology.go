package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/internal/poll"
)

const (
	underlayBridge = "br0"
	etcdPort       = 2379
)

// UnderlayNetns is the name of the underlay namespace.
func (l *Lab) UnderlayNetns() string { return l.st.Prefix + "ul" }

// EtcdEndpoint is the client URL of the lab's etcd, reachable from the nodes.
func (l *Lab) EtcdEndpoint() string {
	return "http://" + netip.AddrPortFrom(l.underlayIP(1), etcdPort).String()
}

func (l *Lab) underlayIP(host int) netip.Addr {
	a := l.st.Underlay.Addr().As4()
	a[3] = byte(host)
	return netip.AddrFrom4(a)
}

// Up creates the underlay and starts etcd with the network config. On error, what was created is
// removed again.
func Up(ctx context.Context, o Options) (l *Lab, err error) {
	if err := nsutil.CheckRoot(); err != nil {
		return nil, err
	}
	o.setDefaults()
	_, statErr := os.Stat(o.Dir)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	// O_EXCL: the record is created once, by this lab; a lab already running here keeps its own.
	rec, err := os.OpenFile(statePath(o.Dir), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("a lab's record %s exists (is one running? weft-demo down -dir %s takes it down): %w", statePath(o.Dir), o.Dir, err)
	}
	rec.Close()
	l = &Lab{log: o.Log, ns: make(map[string]ns.NetNS), st: State{
		Kind: stateKind, Dir: o.Dir, OwnDir: errors.Is(statErr, os.ErrNotExist), Prefix: o.Prefix, BinDir: o.BinDir,
		Conflist: o.Conflist, PodNetwork: o.PodNetwork, Underlay: o.Underlay, UnderlayMTU: o.UnderlayMTU, Procs: map[string]int{},
	}}
	if err := l.save(); err != nil {
		return nil, errors.Join(err, os.Remove(statePath(o.Dir)))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Down())
			l = nil
		}
	}()
	if o.ConflistData != nil {
		if l.st.Conflist, err = l.claim("10-weft.conflist.template"); err != nil {
			return nil, err
		}
		if err := os.WriteFile(l.st.Conflist, o.ConflistData, 0o644); err != nil {
			return nil, err
		}
	}
	l.logf("• underlay: namespace %s, bridge %s, %s", l.UnderlayNetns(), underlayBridge, o.Underlay)
	ul, err := l.createNetns(l.UnderlayNetns())
	if err != nil {
		return nil, err
	}
	err = nsutil.WithHandle(ul, func(h *netlink.Handle) error {
		if err := linkUp(h, "lo"); err != nil {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: underlayBridge, MTU: o.UnderlayMTU}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge: %w", err)
		}
		if err := addAddr(h, underlayBridge, netip.PrefixFrom(l.underlayIP(1), o.Underlay.Bits())); err != nil {
			return err
		}
		return linkUp(h, underlayBridge)
	})
	if err != nil {
		return nil, err
	}
	if err := l.startEtcd(ctx, ul); err != nil {
		return nil, err
	}
	if _, err := l.gossipKey(); err != nil {
		return nil, err
	}
	return l, nil
}

// StopEtcd stops the lab's etcd (an outage); StartEtcd brings it back with its data.
func (l *Lab) StopEtcd() error {
	l.mu.Lock()
	pid := l.st.Procs["etcd"]
	delete(l.st.Procs, "etcd")
	err := l.save()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return stopProc(pid, l.st.Dir, 5*time.Second)
}

// StartEtcd starts the lab's etcd again after StopEtcd and waits until it answers.
func (l *Lab) StartEtcd(ctx context.Context) error {
	ul, err := l.netns(l.UnderlayNetns())
	if err != nil {
		return err
	}
	return l.startEtcd(ctx, ul)
}

// startEtcd runs `weft-demo etcd` in the underlay namespace and waits until it answers.
func (l *Lab) startEtcd(ctx context.Context, ul ns.NetNS) error {
	dir, err := l.claim("etcd")
	if err != nil {
		return err
	}
	logPath, err := l.claim("etcd.log")
	if err != nil {
		return err
	}
	listen := netip.AddrPortFrom(l.underlayIP(1), etcdPort).String()
	cfg := fmt.Sprintf(`{"Network":%q,"Backend":{"Type":"vxlan"}}`, l.st.PodNetwork)
	if err := os.Remove(filepath.Join(dir, "ready")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	cmd := exec.Command(filepath.Join(l.st.BinDir, "weft-demo"), "etcd",
		"-listen", listen, "-data-dir", dir, "-network-config", cfg)
	if err := l.startProc(ul, "etcd", cmd, logPath); err != nil {
		return err
	}
	l.logf("• etcd: embedded, in a child process at %s (log %s)", l.EtcdEndpoint(), logPath)
	_, err = poll.Until(ctx, "etcd to answer", 30*time.Second, func() error {
		c, err := nsutil.Dialer(ul)(ctx, "tcp", listen)
		if err != nil {
			return err
		}
		c.Close()
		_, err = os.Stat(filepath.Join(dir, "ready"))
		return err
	})
	return err
}

// startProc starts cmd inside n in its own session with output to logPath, records it, and reaps it
// when it exits.
func (l *Lab) startProc(n ns.NetNS, key string, cmd *exec.Cmd, logPath string) error {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := n.Do(func(ns.NetNS) error { return cmd.Start() }); err != nil {
		return fmt.Errorf("start %s: %w", key, err)
	}
	go l.reap(cmd)
	return l.recordProc(key, cmd.Process.Pid)
}

// AddNode creates a node namespace on the underlay and starts weftd in it. extra flags are appended
// to weftd's command line.
func (l *Lab) AddNode(ctx context.Context, extra ...string) (*Node, error) {
	node, err := l.PrepareNode(ctx, extra...)
	if err != nil {
		return nil, err
	}
	if err := l.StartWeftd(node); err != nil {
		return nil, err
	}
	l.logf("• %s: namespace %s, underlay %s, weftd started (log %s)", node.Name, node.Netns, node.IP, filepath.Join(node.Dir, "weftd.log"))
	return node, nil
}

// PrepareNode creates a node namespace on the underlay with its files, without starting weftd:
// StartWeftd starts it, so that several nodes can be started at once.
func (l *Lab) PrepareNode(_ context.Context, extra ...string) (*Node, error) {
	l.mu.Lock()
	idx := len(l.st.Nodes) + 1
	l.mu.Unlock()
	node := &Node{
		Name:  fmt.Sprintf("node%d", idx),
		Netns: fmt.Sprintf("%sn%d", l.st.Prefix, idx),
		IP:    l.underlayIP(10 + idx),
		Extra: extra,
	}
	var err error
	if node.Dir, err = l.claim(node.Name); err != nil {
		return nil, err
	}
	if err := l.attachHost(node.Netns, "n"+strconv.Itoa(idx), node.IP, true); err != nil {
		return nil, err
	}
	if err := l.writeConflist(node); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.st.Nodes = append(l.st.Nodes, node)
	err = l.save()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return node, nil
}

// AddOutsideHost creates a namespace on the underlay that is outside the pod network, for checking
// masquerade. It returns the namespace name and its address.
func (l *Lab) AddOutsideHost() (string, netip.Addr, error) {
	name, ip := l.st.Prefix+"out", l.underlayIP(254)
	return name, ip, l.attachHost(name, "out", ip, false)
}

// attachHost creates namespace name with an eth0 on the underlay bridge (its peer called
// "v"+short in the underlay namespace) holding ip; with gw, its default route goes via etcd's host.
func (l *Lab) attachHost(name, short string, ip netip.Addr, gw bool) error {
	n, err := l.createNetns(name)
	if err != nil {
		return err
	}
	ul, err := l.netns(l.UnderlayNetns())
	if err != nil {
		return err
	}
	err = nsutil.WithHandle(ul, func(h *netlink.Handle) error {
		br, err := h.LinkByName(underlayBridge)
		if err != nil {
			return err
		}
		veth := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: "v" + short, MasterIndex: br.Attrs().Index, MTU: l.st.UnderlayMTU},
			PeerName:  "eth0", PeerNamespace: netlink.NsFd(int(n.Fd())),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth for %s: %w", name, err)
		}
		return linkUp(h, veth.Name)
	})
	if err != nil {
		return err
	}
	return nsutil.WithHandle(n, func(h *netlink.Handle) error {
		if err := linkUp(h, "lo"); err != nil {
			return err
		}
		if err := addAddr(h, "eth0", netip.PrefixFrom(ip, l.st.Underlay.Bits())); err != nil {
			return err
		}
		if err := linkUp(h, "eth0"); err != nil {
			return err
		}
		if !gw {
			return nil
		}
		return h.RouteAdd(&netlink.Route{Gw: l.underlayIP(1).AsSlice()})
	})
}

// StartWeftd (re)starts weftd on node.
func (l *Lab) StartWeftd(node *Node) error {
	n, err := l.netns(node.Netns)
	if err != nil {
		return err
	}
	keyFile, err := l.gossipKey()
	if err != nil {
		return err
	}
	args := append([]string{
		"-etcd-endpoints", l.EtcdEndpoint(),
		"-gossip-key-file", keyFile,
		"-node-name", node.Name,
		"-subnet-file", filepath.Join(node.Dir, "subnet.env"),
		"-state-dir", filepath.Join(node.Dir, "state"),
		"-probe-interval", "1s",
	}, node.Extra...)
	cmd := exec.Command(filepath.Join(l.st.BinDir, "weftd"), args...)
	return l.startProc(n, WeftdProc(node), cmd, filepath.Join(node.Dir, "weftd.log"))
}

// gossipKey returns the lab's gossip key file, creating it with a random AES-256 key the first time.
func (l *Lab) gossipKey() (string, error) {
	path, err := l.claim("gossip.key")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// StopWeftd stops node's weftd with sig (SIGTERM or SIGKILL) and waits for it to be gone.
func (l *Lab) StopWeftd(node *Node, sig syscall.Signal) error {
	l.mu.Lock()
	pid := l.st.Procs[WeftdProc(node)]
	delete(l.st.Procs, WeftdProc(node))
	err := l.save()
	l.mu.Unlock()
	if err != nil || pid == 0 {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	_, err = poll.Until(context.Background(), "weftd to exit", 10*time.Second, func() error {
		if ours(pid, l.st.Dir) {
			return fmt.Errorf("pid %d still running", pid)
		}
		return nil
	})
	return err
}

// NodeNS returns node's open namespace.
func (l *Lab) NodeNS(node *Node) (ns.NetNS, error) { return l.netns(node.Netns) }

// NS returns the open namespace of the given name.
func (l *Lab) NS(name string) (ns.NetNS, error) { return l.netns(name) }

func linkUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetUp(link)
}

func addAddr(h *netlink.Handle, name string, p netip.Prefix) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.AddrReplace(link, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}})
}
