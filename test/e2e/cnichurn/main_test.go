// Package cnichurn runs a weft fabric in network namespaces under CNI churn: pods attached and
// detached through a node's conflist many times over, plugins killed mid-ADD and a CNI GC,
// checking that nothing leaks and traffic never stops.
package cnichurn

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wcni"}

func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }
