// Package reboot runs weft fabrics in network namespaces through a node's simulated reboot
// (device, entries, rules and subnet file gone, state dir kept) and its VTEP MAC changing: set by
// hand with etcd up and down, and derived again once the state dir is wiped.
package reboot

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wrbt"}

func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }
