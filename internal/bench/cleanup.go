package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
)

// ErrBusy is returned when another run holds the lock of the state directory.
var ErrBusy = errors.New("another weft-bench run is using this state directory")

// registry records everything a run creates outside its labs (namespaces and processes) so that
// close removes it all, on success and on failure alike; labs are registered too and taken down.
type registry struct {
	mu    sync.Mutex
	dir   string
	labs  []*lab.Lab
	netns map[string]ns.NetNS
	procs map[int]*exec.Cmd
}

func newRegistry(dir string) *registry {
	return &registry{dir: dir, netns: map[string]ns.NetNS{}, procs: map[int]*exec.Cmd{}}
}

// createNetns creates and records a namespace.
func (r *registry) createNetns(name string) (ns.NetNS, error) {
	n, err := nsutil.Create(name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.netns[name] = n
	r.mu.Unlock()
	return n, nil
}

// removeNetns removes a namespace the registry created.
func (r *registry) removeNetns(name string) error {
	r.mu.Lock()
	n, ok := r.netns[name]
	delete(r.netns, name)
	r.mu.Unlock()
	if ok {
		n.Close()
	}
	return nsutil.Remove(nsutil.Path(name))
}

// start starts cmd inside n and records it until stop.
func (r *registry) start(n ns.NetNS, cmd *exec.Cmd) error {
	if err := nsutil.Start(n, cmd); err != nil {
		return err
	}
	r.mu.Lock()
	r.procs[cmd.Process.Pid] = cmd
	r.mu.Unlock()
	return nil
}

// stop ends a process started with start: SIGTERM, then SIGKILL after a grace period.
func (r *registry) stop(cmd *exec.Cmd) error {
	r.mu.Lock()
	delete(r.procs, cmd.Process.Pid)
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(3 * time.Second):
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-done
	return nil
}

// addLab records a lab for close.
func (r *registry) addLab(l *lab.Lab) {
	r.mu.Lock()
	r.labs = append(r.labs, l)
	r.mu.Unlock()
}

// downLab takes a recorded lab down now.
func (r *registry) downLab(l *lab.Lab) error {
	r.mu.Lock()
	for i, x := range r.labs {
		if x == l {
			r.labs = append(r.labs[:i], r.labs[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	return l.Down()
}

// close stops every process, takes every lab down and removes every namespace, carrying on past
// errors.
func (r *registry) close() error {
	r.mu.Lock()
	procs, labs, names := r.procs, r.labs, r.netns
	r.procs, r.labs, r.netns = map[int]*exec.Cmd{}, nil, map[string]ns.NetNS{}
	r.mu.Unlock()
	var errs []error
	for _, cmd := range procs {
		errs = append(errs, r.stop(cmd))
	}
	for i := len(labs) - 1; i >= 0; i-- {
		errs = append(errs, labs[i].Down())
	}
	for name, n := range names {
		n.Close()
		errs = append(errs, nsutil.Remove(nsutil.Path(name)))
	}
	return errors.Join(errs...)
}

// lock takes an exclusive lock next to dir so that two runs never sweep each other's namespaces;
// the returned function releases it.
func lock(dir string) (func(), error) {
	path := filepath.Clean(dir) + ".lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", ErrBusy, path)
		}
		return nil, err
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		os.Remove(path)
	}, nil
}

// sweep removes what a crashed run may have left: iperf3 processes whose command line names dir,
// weftd and etcd processes of labs under dir, namespaces starting with prefix, and dir itself.
func sweep(prefix, dir string) error {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) != "iperf3" {
			continue
		}
		for _, a := range args[1:] {
			if strings.HasPrefix(a, dir+"/") {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
	return lab.Sweep(prefix, dir)
}
