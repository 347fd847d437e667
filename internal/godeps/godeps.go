// Package godeps keeps a binary's dependencies in check from its tests.
package godeps

import (
	"os/exec"
	"strings"
	"testing"
)

// Forbid lists the dependencies of the package in the test's directory (go list -deps .) and fails t
// for each that starts with one of forbidden. must is a dependency the list has to hold, so that an
// implausible list fails too; binary names the binary in the messages.
func Forbid(t testing.TB, binary, must string, forbidden ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), must+"\n") {
		t.Fatalf("go list -deps printed an implausible list:\n%s", out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("%s links %s", binary, d)
			}
		}
	}
}
