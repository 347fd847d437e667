// Package nstest gives tests throwaway network namespaces: each is created for one test and removed
// when the test ends, whether it passed or not. Tests that need one skip when not run as root.
package nstest

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/weft-net/weft/internal/nsutil"
)

// RequireRoot skips the test with a clear message unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links and rules (run `sudo make test`)")
	}
}

// New creates a network namespace that is removed when t ends.
func New(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		n.Close()
		if err := nsutil.Remove(n.Path()); err != nil {
			t.Errorf("remove netns: %v", err)
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
