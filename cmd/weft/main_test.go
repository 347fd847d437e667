package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the plugin binary small and quick to start: a runtime execs it for every
// pod, so it must link none of the daemon's machinery nor the crypto packages.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/weft-net/weft/cni\n") {
		t.Fatalf("go list -deps printed an implausible list:\n%s", out)
	}
	forbidden := []string{
		"go.etcd.io/",
		"github.com/hashicorp/memberlist",
		"github.com/prometheus/",
		"google.golang.org/grpc",
		"github.com/weft-net/weft/daemon",
		"github.com/weft-net/weft/gossip",
		"github.com/weft-net/weft/vxlan",
		"github.com/weft-net/weft/backend",
		"github.com/weft-net/weft/subnet/etcd",
		// The crypto packages' initialisation costs every exec milliseconds.
		"crypto/",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("cmd/weft links %s", d)
			}
		}
	}
}
