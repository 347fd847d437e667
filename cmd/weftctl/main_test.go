package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps weftctl an etcd client: it links neither an etcd server (the demo's lives in
// weft-demo) nor weftd's daemon package.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/weft-net/weft/internal/ctl/admin\n") {
		t.Fatalf("go list -deps printed an implausible list:\n%s", out)
	}
	for _, d := range deps {
		for _, f := range []string{"go.etcd.io/etcd/server", "github.com/weft-net/weft/daemon"} {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("cmd/weftctl links %s", d)
			}
		}
	}
}
