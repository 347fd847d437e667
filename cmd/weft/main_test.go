package main

import (
	"testing"

	"github.com/weft-net/weft/internal/godeps"
)

// TestDependencies keeps the plugin binary small and quick to start: a runtime execs it for every
// pod, so it must link none of the daemon's machinery nor the crypto packages.
func TestDependencies(t *testing.T) {
	godeps.Forbid(t, "cmd/weft", "github.com/weft-net/weft/cni",
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
	)
}
