// Package nsutil creates and removes named network namespaces (the /run/netns files that
// `ip netns` also uses) without iproute2, and runs functions and processes inside them.
package nsutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bind-mounted, as iproute2 does.
const Dir = "/run/netns"

// ErrNotRoot marks a process that cannot create namespaces, links and rules.
var ErrNotRoot = errors.New("needs root: creates network namespaces, links and rules")

// CheckRoot returns ErrNotRoot unless the process runs as root.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

// Path returns the bind-mount path of the named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

var (
	runDirOnce sync.Once
	runDirErr  error
)

// ensureRunDir makes Dir a shared mount point of its own, as `ip netns add` does, before this
// process mounts a namespace there. Whoever turns a plain Dir into a mount point later would bind
// it over itself and hide the namespaces mounted under it until then: they could then be neither
// unmounted nor removed, and outlive their tests. A lock file keeps weft's processes from doing it
// twice at once.
func ensureRunDir() error {
	runDirOnce.Do(func() {
		if runDirErr = os.MkdirAll(Dir, 0o755); runDirErr != nil {
			return
		}
		lock, err := os.OpenFile(filepath.Join(filepath.Dir(Dir), ".weft-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			runDirErr = err
			return
		}
		defer lock.Close()
		if runDirErr = unix.Flock(int(lock.Fd()), unix.LOCK_EX); runDirErr != nil {
			return
		}
		// Making it shared fails with EINVAL while Dir is no mount point.
		if err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, ""); !errors.Is(err, unix.EINVAL) {
			runDirErr = err
			return
		}
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			runDirErr = fmt.Errorf("bind %s onto itself: %w", Dir, err)
			return
		}
		runDirErr = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	})
	return runDirErr
}

// Create creates the named namespace and returns it open. An existing namespace of that name is an
// error wrapping os.ErrExist.
func Create(name string) (ns.NetNS, error) {
	if err := ensureRunDir(); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	if _, err := os.Stat(Path(name)); err == nil {
		return nil, fmt.Errorf("netns %s: %w", name, os.ErrExist)
	}
	errc := make(chan error, 1)
	go func() {
		// The new namespace is entered by this thread; if it cannot be left again, the thread stays
		// locked and dies with the goroutine instead of going back to the pool.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if serr := netns.Set(orig); serr != nil {
			errc <- errors.Join(err, serr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	return ns.GetNS(Path(name))
}

// Remove unmounts (lazily, as `ip netns del` does) and deletes a named namespace's bind mount. A
// namespace already gone is not an error; the namespace itself ends with its last process.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Start starts cmd with the calling thread switched into n, so the process lives in n.
func Start(n ns.NetNS, cmd *exec.Cmd) error {
	return n.Do(func(ns.NetNS) error { return cmd.Start() })
}

// Dialer returns a DialContext function whose sockets are created inside n, for clients (etcd, HTTP)
// that talk from the host to a server in a namespace.
func Dialer(n ns.NetNS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.Do(func(ns.NetNS) error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// WithHandle runs fn with a netlink handle in namespace n, closed when fn returns.
func WithHandle(n ns.NetNS, fn func(*netlink.Handle) error) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(int(n.Fd())))
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", n.Path(), err)
	}
	defer h.Close()
	return fn(h)
}
