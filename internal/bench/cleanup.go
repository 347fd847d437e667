package bench

import (
	"encoding/json"
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

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nsutil"
)

// ErrBusy is returned when another run holds the lock of the state directory.
var ErrBusy = errors.New("another weft-bench run is using this state directory")

// recordKind marks a run's record file: a file without it is not taken for one.
const recordKind = "weft-bench/v1"

// record is what a run created outside its labs, kept in <dir>/bench.json before each thing is
// created, so that a later run removes exactly a crashed run's leftovers and nothing else.
type record struct {
	Kind string
	// OwnDir is set when the run created dir.
	OwnDir bool
	Netns  []string
	Procs  []recordedProc
}

// recordedProc is a process the run started, with its command line to tell it from a later
// process that got the same PID.
type recordedProc struct {
	PID     int
	Cmdline string
}

// registry records everything a run creates outside its labs (namespaces and processes) so that
// close removes it all, on success and on failure alike; labs are registered too and taken down.
type registry struct {
	mu    sync.Mutex
	dir   string
	rec   record
	labs  []*lab.Lab
	netns map[string]ns.NetNS
	procs map[int]*exec.Cmd
}

func newRegistry(dir string, ownDir bool) (*registry, error) {
	r := &registry{dir: dir, rec: record{Kind: recordKind, OwnDir: ownDir}, netns: map[string]ns.NetNS{}, procs: map[int]*exec.Cmd{}}
	return r, r.saveLocked()
}

func recordPath(dir string) string { return filepath.Join(dir, "bench.json") }

// saveLocked writes the record; the caller holds mu (or is the only user).
func (r *registry) saveLocked() error {
	data, err := json.Marshal(&r.rec)
	if err != nil {
		return err
	}
	return atomicfile.Write(recordPath(r.dir), data, 0o600)
}

// createNetns records and creates a namespace.
func (r *registry) createNetns(name string) (ns.NetNS, error) {
	r.mu.Lock()
	r.rec.Netns = append(r.rec.Netns, name)
	err := r.saveLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
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
	defer r.mu.Unlock()
	r.procs[cmd.Process.Pid] = cmd
	r.rec.Procs = append(r.rec.Procs, recordedProc{PID: cmd.Process.Pid, Cmdline: strings.Join(cmd.Args, "\x00")})
	return r.saveLocked()
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

// close stops every process, takes every lab down, removes every namespace and the record (and
// the run's directory when it created it and nothing else is left there), carrying on past errors.
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
	if err := os.Remove(recordPath(r.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if r.rec.OwnDir {
		errs = append(errs, removeIfEmpty(r.dir))
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

// recoverRun removes what a crashed run recorded in dir and left: its processes (still running
// the recorded command line), its namespaces and its labs (each by its own record). Without a
// record it removes nothing.
func recoverRun(dir string) error {
	data, err := os.ReadFile(recordPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Kind != recordKind {
		return fmt.Errorf("%s is not a weft-bench record (%v): not touching %s", recordPath(dir), err, dir)
	}
	var errs []error
	for _, p := range rec.Procs {
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID)); err == nil && strings.TrimRight(string(raw), "\x00") == p.Cmdline {
			if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range rec.Netns {
		errs = append(errs, nsutil.Remove(nsutil.Path(name)))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range entries {
		if l, err := lab.Load(filepath.Join(dir, e.Name()), nil); err == nil {
			errs = append(errs, l.Down())
		}
	}
	errs = append(errs, os.Remove(recordPath(dir)))
	if rec.OwnDir {
		errs = append(errs, removeIfEmpty(dir))
	}
	return errors.Join(errs...)
}

// removeIfEmpty removes dir unless something is left in it (or it is gone).
func removeIfEmpty(dir string) error {
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return err
	}
	return nil
}
