// Package lab builds a weft fabric on one machine out of network namespaces: an underlay namespace
// with a bridge, an embedded etcd in a child process on that underlay, one namespace per node running
// weftd, and pod namespaces attached through the weft CNI plugin. `weftctl demo` and the end-to-end
// tests both use it. Everything it creates is recorded in a state file so that Down removes it all,
// even after a crash.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/internal/nsutil"
)

// Errors.
var (
	// ErrNoLab is returned by Load when no lab state exists in the directory.
	ErrNoLab = errors.New("no lab is running here")
)

// Options shape the lab.
type Options struct {
	// Dir holds the state file, per-node files and logs. It is removed by Down.
	Dir string
	// Prefix starts every namespace name, so that labs do not collide.
	Prefix string
	// BinDir holds weftd, weftctl, weft and portmap.
	BinDir string
	// Conflist is the CNI conflist template (etc/10-weft.conflist); ConflistData its content
	// instead, which the lab writes into Dir.
	Conflist     string
	ConflistData []byte
	// PodNetwork is the cluster pod network written to etcd.
	PodNetwork netip.Prefix
	// Underlay is the /24 of the underlay bridge; .1 is etcd's address, nodes start at .11.
	Underlay netip.Prefix
	// UnderlayMTU is the MTU of the underlay bridge and of every host's link on it (a jumbo-frame
	// underlay, say); 0 keeps the kernel's 1500.
	UnderlayMTU int
	// Log receives progress lines.
	Log io.Writer
}

// stateKind marks a lab's state file: a file without it is not taken for one.
const stateKind = "weft-lab/v1"

// State is what the lab created, persisted in Dir/lab.json before each thing is created, so that
// Down removes exactly that, even after a crash.
type State struct {
	// Kind is stateKind.
	Kind string
	Dir  string
	// OwnDir is set when the lab created Dir; Files are the entries of Dir it created.
	OwnDir     bool
	Files      []string
	Prefix     string
	BinDir     string
	Conflist   string
	PodNetwork netip.Prefix
	Underlay   netip.Prefix
	// UnderlayMTU is Options.UnderlayMTU.
	UnderlayMTU int
	Netns       []string
	Procs       map[string]int
	Nodes       []*Node
	Pods        []*Pod
}

// Node is one weft node of the lab.
type Node struct {
	Name  string
	Netns string
	IP    netip.Addr
	Dir   string
	Extra []string
}

// Pod is one pod namespace attached through the CNI plugin.
type Pod struct {
	Name  string
	Node  string
	Netns string
	IP    netip.Addr
}

// Lab is a running lab.
type Lab struct {
	mu  sync.Mutex
	st  State
	log io.Writer
	ns  map[string]ns.NetNS
	// exits records how the processes this Lab started ended, by pid.
	exits map[int]*os.ProcessState
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = "wd-"
	}
	if !o.PodNetwork.IsValid() {
		o.PodNetwork = netip.MustParsePrefix("10.244.0.0/16")
	}
	if !o.Underlay.IsValid() {
		o.Underlay = netip.MustParsePrefix("198.18.0.0/24")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.log, format+"\n", args...)
}

// statePath is the state file in dir.
func statePath(dir string) string { return filepath.Join(dir, "lab.json") }

// save writes the state file; the caller holds l.mu.
func (l *Lab) save() error {
	data, err := json.MarshalIndent(&l.st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(statePath(l.st.Dir), data, 0o600)
}

// Load opens the lab recorded in dir.
func Load(dir string, log io.Writer) (*Lab, error) {
	data, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s has no lab.json)", ErrNoLab, dir)
	}
	if err != nil {
		return nil, err
	}
	l := &Lab{log: log, ns: make(map[string]ns.NetNS)}
	if log == nil {
		l.log = io.Discard
	}
	if err := json.Unmarshal(data, &l.st); err != nil || l.st.Kind != stateKind {
		return nil, fmt.Errorf("%w: %s is not a lab's record (%v)", ErrNoLab, statePath(dir), err)
	}
	if filepath.Clean(l.st.Dir) != filepath.Clean(dir) {
		return nil, fmt.Errorf("%w: %s records the lab of %s", ErrNoLab, statePath(dir), l.st.Dir)
	}
	return l, nil
}

// State returns a copy of what the lab holds.
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// netns returns the open namespace of the given name, opening it once.
func (l *Lab) netns(name string) (ns.NetNS, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.ns[name]; ok {
		return n, nil
	}
	n, err := ns.GetNS(nsutil.Path(name))
	if err != nil {
		return nil, err
	}
	l.ns[name] = n
	return n, nil
}

// claim records name, an entry of the lab's directory, as the lab's before it is created, and
// returns its path.
func (l *Lab) claim(name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.st.Files, name) {
		l.st.Files = append(l.st.Files, name)
		if err := l.save(); err != nil {
			return "", err
		}
	}
	return filepath.Join(l.st.Dir, name), nil
}

// createNetns creates a namespace and records it before anything is put in it.
func (l *Lab) createNetns(name string) (ns.NetNS, error) {
	n, err := nsutil.Create(name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.st.Netns = append(l.st.Netns, name)
	l.ns[name] = n
	err = l.save()
	l.mu.Unlock()
	return n, err
}

// recordProc records a started process under key.
func (l *Lab) recordProc(key string, pid int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.Procs[key] = pid
	return l.save()
}

// Down stops every process and removes every namespace and file the lab recorded as its own (a
// directory it did not create stays, with whatever else is in it). It carries on past errors and
// returns them joined.
func (l *Lab) Down() error {
	l.mu.Lock()
	st := l.st
	for _, n := range l.ns {
		n.Close()
	}
	l.ns = map[string]ns.NetNS{}
	l.mu.Unlock()
	var errs []error
	for key, pid := range st.Procs {
		if err := stopProc(pid, st.Dir, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop %s (pid %d): %w", key, pid, err))
		}
	}
	for i := len(st.Netns) - 1; i >= 0; i-- {
		if err := nsutil.Remove(nsutil.Path(st.Netns[i])); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(st.Files) - 1; i >= 0; i-- {
		if err := os.RemoveAll(filepath.Join(st.Dir, st.Files[i])); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(statePath(st.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if st.OwnDir {
		// Empty unless someone else put something there, which stays.
		if err := os.Remove(st.Dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ours reports whether pid is a process the lab started (see labProcess).
func ours(pid int, dir string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return false
	}
	return labProcess(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), dir)
}

// labProcess reports whether a process's command line is one the lab starts: weftd or
// `weft-demo etcd`, with the lab's dir on it.
func labProcess(args []string, dir string) bool {
	switch filepath.Base(args[0]) {
	case "weftd":
	case "weft-demo":
		if len(args) < 2 || args[1] != "etcd" {
			return false
		}
	default:
		return false
	}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, dir+"/") || a == dir {
			return true
		}
	}
	return false
}

// stopProc sends SIGTERM to pid if it is one of the lab's, then SIGKILL after grace.
func stopProc(pid int, dir string, grace time.Duration) error {
	if pid <= 0 || !ours(pid, dir) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !ours(pid, dir) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}
