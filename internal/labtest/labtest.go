// Package labtest runs internal/lab fabrics inside Go tests: each lab is removed when its test
// ends (or, for a package's shared lab, when its tests are done), and the nodes' logs are shown when
// a test failed. It also holds what only tests do to a lab: attach sandboxes through a node's CNI
// conflist under container IDs of their choosing, and read how a weftd ended.
package labtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nstest"
)

// Harness starts labs from binaries built once for the test process.
type Harness struct {
	// BinDir holds the binaries. Left empty, the first lab builds them (lab.Build) into a temporary
	// directory that Close removes.
	BinDir string
	// ModuleDir is the module root, to build from and for etc/10-weft.conflist.
	ModuleDir string
	// Prefix starts the namespace names of this harness's labs.
	Prefix string

	mu       sync.Mutex
	count    int
	build    sync.Once
	builtDir string
	buildErr error
	shared   *sharedLab
}

// sharedLab is the one lab of a harness that several tests use.
type sharedLab struct {
	once  sync.Once
	dir   string
	lab   *lab.Lab
	nodes []*lab.Node
	pods  []*lab.Pod
	err   error
}

// Spec is what a lab starts with.
type Spec struct {
	// Nodes nodes are started; once each is ready, Pods pods are attached to it.
	Nodes, Pods int
	// Extra flags are appended to every weftd's command line.
	Extra []string
	// UnderlayMTU is lab.Options.UnderlayMTU: 0 keeps the kernel's 1500.
	UnderlayMTU int
}

// Lab starts a lab with nodes nodes (weftd given the extra flags), waits until each is ready and
// attaches pods pods to each. The lab is taken down when t ends. It skips t when not root.
func (h *Harness) Lab(t *testing.T, nodes, pods int, extra ...string) (*lab.Lab, []*lab.Node) {
	t.Helper()
	l, out, _ := h.Start(t, Spec{Nodes: nodes, Pods: pods, Extra: extra})
	return l, out
}

// Start starts a lab as s says and returns it with its nodes and pods. The lab is taken down when t
// ends, after its logs are shown if t failed. It skips t when not root.
func (h *Harness) Start(t *testing.T, s Spec) (*lab.Lab, []*lab.Node, []*lab.Pod) {
	t.Helper()
	nstest.RequireRoot(t)
	l, nodes, pods, err := h.up(t.TempDir(), s)
	if l != nil {
		t.Cleanup(func() {
			if t.Failed() {
				DumpLogs(t, l)
			}
			if err := l.Down(); err != nil {
				t.Errorf("lab down: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return l, nodes, pods
}

// Shared returns the harness's shared lab, which the first test that calls it starts as s says; the
// later calls' s is not looked at. The lab outlives the test: Close takes it down. The logs are
// shown when t failed. It skips t when not root.
func (h *Harness) Shared(t *testing.T, s Spec) (*lab.Lab, []*lab.Node, []*lab.Pod) {
	t.Helper()
	nstest.RequireRoot(t)
	h.mu.Lock()
	if h.shared == nil {
		h.shared = &sharedLab{}
	}
	sh := h.shared
	h.mu.Unlock()
	sh.once.Do(func() {
		if sh.dir, sh.err = os.MkdirTemp("", "weft-shared-lab"); sh.err == nil {
			sh.lab, sh.nodes, sh.pods, sh.err = h.up(sh.dir, s)
		}
	})
	if sh.lab != nil {
		t.Cleanup(func() {
			if t.Failed() {
				DumpLogs(t, sh.lab)
			}
		})
	}
	if sh.err != nil {
		t.Fatalf("shared lab: %v", sh.err)
	}
	return sh.lab, sh.nodes, sh.pods
}

// up starts a lab in parent/lab as s says. It returns the lab whenever one was started, even with
// an error, for the caller to take down.
func (h *Harness) up(parent string, s Spec) (*lab.Lab, []*lab.Node, []*lab.Pod, error) {
	binDir, err := h.binaries()
	if err != nil {
		return nil, nil, nil, err
	}
	h.mu.Lock()
	h.count++
	prefix := fmt.Sprintf("%s%d-%d-", h.Prefix, os.Getpid()%100000, h.count)
	h.mu.Unlock()
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{
		Dir:         filepath.Join(parent, "lab"),
		Prefix:      prefix,
		BinDir:      binDir,
		Conflist:    filepath.Join(h.ModuleDir, "etc", "10-weft.conflist"),
		UnderlayMTU: s.UnderlayMTU,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	var nodes []*lab.Node
	for range s.Nodes {
		n, err := l.AddNode(ctx, s.Extra...)
		if err != nil {
			return l, nil, nil, err
		}
		nodes = append(nodes, n)
	}
	var pods []*lab.Pod
	for _, n := range nodes {
		if err := l.WaitReady(ctx, n, 60*time.Second); err != nil {
			return l, nil, nil, err
		}
		for range s.Pods {
			p, err := l.AddPod(ctx, n)
			if err != nil {
				return l, nil, nil, err
			}
			pods = append(pods, p)
		}
	}
	return l, nodes, pods, nil
}

// binaries returns BinDir, building the binaries into a temporary directory the first time when
// BinDir is empty.
func (h *Harness) binaries() (string, error) {
	if h.BinDir != "" {
		return h.BinDir, nil
	}
	h.build.Do(func() {
		if h.builtDir, h.buildErr = os.MkdirTemp("", "weft-test-bin"); h.buildErr == nil {
			h.buildErr = lab.Build(h.ModuleDir, h.builtDir)
		}
	})
	return h.builtDir, h.buildErr
}

// Close takes the shared lab down and removes the binaries the harness built. It carries on past
// errors and returns them joined.
func (h *Harness) Close() error {
	var errs []error
	if sh := h.shared; sh != nil {
		if sh.lab != nil {
			if err := sh.lab.Down(); err != nil {
				errs = append(errs, fmt.Errorf("shared lab down: %w", err))
			}
		}
		if sh.dir != "" {
			errs = append(errs, os.RemoveAll(sh.dir))
		}
	}
	if h.builtDir != "" {
		errs = append(errs, os.RemoveAll(h.builtDir))
	}
	return errors.Join(errs...)
}

// Run runs the tests of m, then Close, and returns the exit code for os.Exit: non-zero when a test
// failed or Close did.
func (h *Harness) Run(m *testing.M) int {
	code := m.Run()
	if err := h.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "labtest:", err)
		code = max(code, 1)
	}
	return code
}

// DumpLogs logs the tail of every node's weftd log.
func DumpLogs(t *testing.T, l *lab.Lab) {
	for _, n := range l.State().Nodes {
		data, _ := os.ReadFile(WeftdLog(n))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("%s weftd.log (tail):\n%s", n.Name, strings.Join(lines, "\n"))
	}
}

// WeftdLog is the path of node's weftd log.
func WeftdLog(n *lab.Node) string { return filepath.Join(n.Dir, "weftd.log") }
