// Package labtest runs internal/lab fabrics inside Go tests: each lab is removed when its test
// ends, and the nodes' logs are shown when the test failed.
package labtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/lab"
)

// Harness starts labs from binaries built once for the test process.
type Harness struct {
	// BinDir holds the binaries (lab.Build); ModuleDir is the module root, for etc/10-weft.conflist.
	BinDir, ModuleDir string
	// Prefix starts the namespace names of this harness's labs.
	Prefix string
	count  int
}

// Lab starts a lab with nodes nodes (weftd given the extra flags), waits until each is ready and
// attaches pods pods to each. The lab is taken down when t ends.
func (h *Harness) Lab(t *testing.T, nodes, pods int, extra ...string) (*lab.Lab, []*lab.Node) {
	t.Helper()
	h.count++
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{
		Dir:      filepath.Join(t.TempDir(), "lab"),
		Prefix:   fmt.Sprintf("%s%d-%d-", h.Prefix, os.Getpid()%100000, h.count),
		BinDir:   h.BinDir,
		Conflist: filepath.Join(h.ModuleDir, "etc", "10-weft.conflist"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			DumpLogs(t, l)
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	var out []*lab.Node
	for range nodes {
		n, err := l.AddNode(ctx, extra...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	for _, n := range out {
		if err := l.WaitReady(ctx, n, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		for range pods {
			if _, err := l.AddPod(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l, out
}

// DumpLogs logs the tail of every node's weftd log.
func DumpLogs(t *testing.T, l *lab.Lab) {
	for _, n := range l.State().Nodes {
		data, _ := os.ReadFile(filepath.Join(n.Dir, "weftd.log"))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("%s weftd.log (tail):\n%s", n.Name, strings.Join(lines, "\n"))
	}
}
