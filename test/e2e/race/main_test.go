// Package race runs weft fabrics in network namespaces where nodes race for subnets: twenty nodes
// started at once on a network of exactly twenty subnets, then two racing for one more.
package race

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wrac"}

func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }
