// Package etcdfault runs weft fabrics in network namespaces through etcd's faults: an outage while
// traffic flows and a node restarts, and bad data written to etcd (malformed or overlapping leases,
// an invalid network config).
package etcdfault

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wetc"}

func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }
