// Package nstest gives tests throwaway network namespaces: each is created for one test and removed
// when the test ends, whether it passed or not. Tests that need one skip when not run as root.
package nstest

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/nsutil"
)

// RequireRoot skips the test, saying why, unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if err := nsutil.CheckRoot(); err != nil {
		t.Skipf("skipped: %v (run `sudo make test`)", err)
	}
}

var count atomic.Int64

// New creates a named network namespace (weft-t<pid>-<n> in /run/netns, so processes and CNI
// runtimes can be pointed at its path) that is removed when t ends. It skips t when not root.
func New(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("weft-t%d-%d", os.Getpid(), count.Add(1))
	n, err := nsutil.Create(name)
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		n.Close()
		if err := nsutil.Remove(n.Path()); err != nil {
			t.Errorf("remove netns %s: %v", name, err)
		}
	})
	return n
}

// Do runs fn inside n and fails the test on error.
func Do(t testing.TB, n ns.NetNS, fn func() error) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return fn() }); err != nil {
		t.Fatal(err)
	}
}
