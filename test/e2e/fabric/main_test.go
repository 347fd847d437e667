// Package fabric runs whole weft fabrics in network namespaces — etcd, weftd on every node, pods
// attached through the CNI plugin — and checks what the Kubernetes network model promises:
// reachability without NAT, masquerade, hostPorts, nodes joining and leaving, and pods using a
// jumbo-frame underlay's MTU.
package fabric

import (
	"os"
	"testing"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
)

var harness = &labtest.Harness{ModuleDir: e2etest.ModuleDir, Prefix: "wfab"}

func TestMain(m *testing.M) { os.Exit(harness.Run(m)) }

// sharedFabric is the package's shared lab: three nodes with two pods each. Its tests leave the
// nodes and pods it starts with running and reachable.
func sharedFabric(t *testing.T) (*lab.Lab, []*lab.Node, []*lab.Pod) {
	t.Helper()
	return harness.Shared(t, labtest.Spec{Nodes: 3, Pods: 2})
}
