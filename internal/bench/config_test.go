package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // rendered config, or the error
	}{
		{"defaults", nil, nil,
			"sections=[throughput cni mesh resources] runs=7 iperf=2s variants=[gro notrack mtu9000] mesh=[3 10 20]x3 joins=map[3:20 10:100 20:20] peers=[100 1000] window=1m0s idle=30s cni=100/20"},
		{"flags", []string{"-sections", "mesh", "-mesh-nodes", "4", "-joins", "4:7", "-variants", "", "-runs", "7"}, nil,
			"sections=[mesh] runs=7 iperf=2s variants=[] mesh=[4]x3 joins=map[4:7] peers=[100 1000] window=1m0s idle=30s cni=100/20"},
		{"environment", nil, map[string]string{"WEFT_PEERS": "10", "WEFT_WINDOW": "7s"},
			"sections=[throughput cni mesh resources] runs=7 iperf=2s variants=[gro notrack mtu9000] mesh=[3 10 20]x3 joins=map[3:20 10:100 20:20] peers=[10] window=7s idle=30s cni=100/20"},
		{"bad section", []string{"-sections", "disk"}, nil, "usage: Sections=disk: want one of throughput, cni, mesh, resources"},
		{"bad variant", []string{"-variants", "jumbo"}, nil, "usage: Variants=jumbo: want one of gro, notrack, mtu9000"},
		{"joins not a size", []string{"-joins", "5:10"}, nil, "usage: Joins=5:10: want a non-negative count at one of the MeshNodes sizes"},
		{"joins malformed", []string{"-joins", "10"}, nil, `usage: -joins="10": "10" is not size:count`},
		{"mesh nodes not numbers", []string{"-mesh-nodes", "3,x"}, nil, `usage: -mesh-nodes="3,x": "x" is not a number`},
		{"one node", []string{"-mesh-nodes", "1", "-joins", ""}, nil, "usage: MeshNodes=1: want 2..200 nodes"},
		{"too many peers", []string{"-peers", "1001"}, nil, "usage: Peers=1001: want 1..1000 synthetic peers (the pod network holds 1,024 /26 subnets)"},
		{"out inside dir", []string{"-out", "/tmp/weft-bench/r.json"}, nil, "usage: Out=/tmp/weft-bench/r.json: must not be inside Dir, which is removed at the end"},
		{"root dir", []string{"-dir", "/"}, nil, "usage: Dir=/: want an absolute directory other than /"},
		{"long prefix", []string{"-prefix", "weftbench-"}, nil, "usage: Prefix=weftbench-: want 1 to 6 characters without / or spaces (namespace names are built from it)"},
		{"short window", []string{"-window", "1s"}, nil, "usage: Window=1s/30s: windows must be at least 5s"},
		{"iperf time", []string{"-iperf-time", "500ms"}, nil, "usage: IperfTime=500ms: want 1s..1m"},
		{"bad env", nil, map[string]string{"WEFT_RUNS": "many"}, `usage: invalid value "many" for WEFT_RUNS (flag -runs): parse error`},
		{"argument", []string{"extra"}, nil, `usage: unexpected argument "extra"`},
		{"weftd flag without a dash", []string{"-weftd-flags", "-mtu=1400 probe"}, nil, "usage: WeftdFlags=probe: want -flag=value words"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			var got string
			if err != nil {
				if !errors.Is(err, ErrUsage) {
					t.Errorf("error %v does not wrap ErrUsage", err)
				}
				got = err.Error()
			} else {
				got = fmt.Sprintf("sections=%v runs=%d iperf=%v variants=%v mesh=%vx%d joins=%v peers=%v window=%v idle=%v cni=%d/%d",
					c.Sections, c.Runs, c.IperfTime, c.Variants, c.MeshNodes, c.MeshRuns, c.Joins, c.Peers, c.Window, c.IdleWindow, c.CNIOps, c.CNIBatch)
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
