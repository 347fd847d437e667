// Package tamper runs a weft fabric in network namespaces while its kernel entries and iptables
// rules are deleted by hand, and measures how soon weftd restores them.
package tamper

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wtmp"}

func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }
