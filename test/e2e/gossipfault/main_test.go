// Package gossipfault runs weft fabrics in network namespaces against gossip's faults: members with
// the wrong key, members claiming others' or unleased subnets or a live node's name, and members
// joining and leaving over and over. Those members are played by a gossip actor: this package's
// test binary, started again inside a lab namespace with e2etest.ActorEnv set.
package gossipfault

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wgos"}

func TestMain(m *testing.M) {
	if spec := os.Getenv(e2etest.ActorEnv); spec != "" {
		os.Exit(e2etest.RunGossipActor(spec))
	}
	os.Exit(harness.Run(m))
}
