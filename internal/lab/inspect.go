package lab

import (
	"net"
	"os"
	"os/exec"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/internal/nsutil"
)

// reap waits for cmd to end and records its exit state for Exited.
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

// WeftdProc is the key under which State.Procs records node's weftd.
func WeftdProc(node *Node) string { return "weftd/" + node.Name }

// Exited reports how the process recorded in State.Procs under key ended, once it has ended: nil
// and false while it runs, or when no process is recorded under key.
func (l *Lab) Exited(key string) (*os.ProcessState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.exits[l.st.Procs[key]]
	return st, ok
}

// CNI returns node's CNI configuration and conflist, as node's runtime invokes them: the lab's
// binaries as plugins, the node's own cache directory.
func (l *Lab) CNI(node *Node) (*libcni.CNIConfig, *libcni.NetworkConfigList, error) {
	return l.cni(node)
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
	return nsutil.WithHandle(n, fn)
}
