package fabric

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	"github.com/weft-net/weft/internal/nstest"
)

// ICMP echo over IPv4: what ping's -s leaves out of the IP packet's size.
const (
	ipv4Header = 20
	icmpHeader = 8
)

// pingSummary is iputils ping's closing count line.
var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingFrom runs the ping binary inside namespace n with args and returns its combined output and
// exit code.
func pingFrom(t *testing.T, n ns.NetNS, args ...string) (string, int) {
	t.Helper()
	var out []byte
	err := n.Do(func(ns.NetNS) error {
		var err error
		// The child is forked from this thread, so it runs in n.
		out, err = exec.Command("ping", args...).CombinedOutput()
		return err
	})
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("ping %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// dfPing pings dst from n count times with payload bytes of ICMP data and DF set (no
// fragmentation anywhere), waiting up to a second for each reply.
func dfPing(t *testing.T, n ns.NetNS, dst *lab.Pod, payload, count int) (string, int) {
	t.Helper()
	return pingFrom(t, n, "-n", "-M", "do", "-s", strconv.Itoa(payload), "-c", strconv.Itoa(count), "-W", "1", dst.IP.String())
}

// linkMTU returns the MTU of link name in namespace n.
func linkMTU(t *testing.T, n ns.NetNS, name string) (int, error) {
	t.Helper()
	link, err := e2etest.Handle(t, n).LinkByName(name)
	if err != nil {
		return 0, err
	}
	return link.Attrs().MTU, nil
}

// TestJumboMTU starts weftd on a jumbo-frame underlay of 9216 bytes: the VXLAN backend derives a
// pod MTU of 9166 (VXLAN over IPv4 takes 50 bytes), which subnet.env carries and the nodes run with
// (weftd once exited here, its subnet.env check capping the MTU at 9000). A 9000-byte packet with
// DF set, and one of exactly the pod MTU, go from a pod on one node to a pod on the other; one
// byte more is refused.
func TestJumboMTU(t *testing.T) {
	const (
		underlayMTU = 9216
		podMTU      = 9166
	)
	nstest.RequireRoot(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatalf("this test runs iputils ping (package iputils-ping): %v", err)
	}
	l, nodes, pods := harness.Start(t, labtest.Spec{Nodes: 2, Pods: 1, UnderlayMTU: underlayMTU})
	for _, n := range nodes {
		if e := e2etest.Env(t, l, n); e.MTU != podMTU || !e.Ready {
			t.Errorf("%s's subnet.env: MTU %d, ready %t; want MTU %d, ready", n.Name, e.MTU, e.Ready, podMTU)
		}
		if code, exited := labtest.WeftdExit(l, n); exited {
			t.Errorf("%s's weftd exited with code %d:\n%s", n.Name, code, e2etest.NodeLog(t, n))
		}
		if mtu, err := linkMTU(t, e2etest.NS(t, l, n.Netns), lab.Device); err != nil || mtu != podMTU {
			t.Errorf("%s's %s: MTU %d (%v), want %d", n.Name, lab.Device, mtu, err, podMTU)
		}
	}
	src, dst := pods[0], pods[1]
	if src.Node == dst.Node {
		t.Fatalf("pods %s and %s are on one node", src.Name, dst.Name)
	}
	srcNS := e2etest.NS(t, l, src.Netns)
	if mtu, err := linkMTU(t, srcNS, "eth0"); err != nil || mtu != podMTU {
		t.Errorf("%s's eth0: MTU %d (%v), want %d", src.Name, mtu, err, podMTU)
	}

	for _, size := range []int{9000, podMTU} {
		t.Run(fmt.Sprintf("%d-byte packet with DF passes", size), func(t *testing.T) {
			payload := size - ipv4Header - icmpHeader
			e2etest.Poll(t, fmt.Sprintf("a %d-byte ping from %s to %s answered", size, src.Name, dst.Name), 15*time.Second, func() error {
				if out, code := dfPing(t, srcNS, dst, payload, 1); code != 0 {
					return fmt.Errorf("exit code %d: %s", code, out)
				}
				return nil
			})
			const count = 3
			out, code := dfPing(t, srcNS, dst, payload, count)
			m := pingSummary.FindStringSubmatch(out)
			if code != 0 || m == nil || m[1] != strconv.Itoa(count) || m[2] != strconv.Itoa(count) {
				t.Fatalf("ping -M do -s %d: exit code %d, want %d of %d answered:\n%s", payload, code, count, count, out)
			}
			// The echo reply carries the whole payload back: ping counts the ICMP header and data.
			if reply := fmt.Sprintf("%d bytes from %s", payload+icmpHeader, dst.IP); !strings.Contains(out, reply) {
				t.Errorf("ping -M do -s %d: no %q in:\n%s", payload, reply, out)
			}
			t.Logf("ping -M do -s %d (%d-byte packets): exit code %d, %s of %s answered", payload, size, code, m[2], m[1])
		})
	}

	t.Run("packet above the pod MTU is refused", func(t *testing.T) {
		payload := podMTU + 1 - ipv4Header - icmpHeader
		out, code := dfPing(t, srcNS, dst, payload, 1)
		if code == 0 || strings.Contains(out, "bytes from") {
			t.Fatalf("ping -M do -s %d (%d bytes) got through, exit code %d:\n%s", payload, podMTU+1, code, out)
		}
		if !strings.Contains(strings.ToLower(out), "message too long") {
			t.Errorf("ping -M do -s %d: exit code %d without \"message too long\":\n%s", payload, code, out)
		}
		t.Logf("ping -M do -s %d (%d bytes): exit code %d: %s", payload, podMTU+1, code, strings.TrimSpace(out))
	})
}
