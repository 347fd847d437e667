package cnichurn

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-net/weft/cni/ipam"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/internal/e2etest"
	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
)

// TestCNIChurn is scenario 9 in `make test`: 500 ADD/DEL cycles, 4 in parallel, then plugins killed
// mid-ADD.
func TestCNIChurn(t *testing.T) { cniChurn(t, 500, 40) }

// TestSoakCNIChurn is scenario 9 with 10,000 cycles and 400 kills.
func TestSoakCNIChurn(t *testing.T) {
	e2etest.RequireSoak(t)
	cniChurn(t, 10000, 400)
}

// cniChurn attaches and detaches pods on node1 through its conflist (weft and portmap, run by
// libcni as a runtime does) with weftd running, while node1's long-lived pod is pinged across
// nodes: no ping may be lost, and afterwards the node must hold exactly what it held before (no
// leaked address, veth, iptables rule or file). Then ADDs are killed (SIGKILL) at spread-out moments
// and a CNI GC with the long-lived pod as the only valid attachment must restore that state again.
func cniChurn(t *testing.T, cycles, kills int) {
	const workers = 4
	l, nodes, pods := harness.Start(t, labtest.Spec{Nodes: 2, Pods: 1})
	ctx := context.Background()
	n1 := nodes[0]
	pairs := []e2etest.PingPair{e2etest.PodPair(t, l, pods[0], pods[1]), e2etest.PodPair(t, l, pods[1], pods[0]), e2etest.NodePair(t, l, nodes[1], pods[0])}
	tr := e2etest.StartTraffic(t, pairs...)
	before := cniState(t, l, n1)

	var sandboxes []string
	for w := range workers {
		sandboxes = append(sandboxes, labtest.AddNetns(t, l, fmt.Sprintf("cw%d", w)))
	}
	var next, addTime atomic.Int64
	errs := make([]error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			sandbox, err := ns.GetNS(sandboxes[w])
			if err != nil {
				errs[w] = err
				return
			}
			defer sandbox.Close()
			for {
				i := int(next.Add(1) - 1)
				if i >= cycles {
					return
				}
				id := fmt.Sprintf("churn-%d", i)
				t0 := time.Now()
				if _, err := labtest.CNIAdd(ctx, l, n1, id, sandboxes[w]); err != nil {
					errs[w] = err
					return
				}
				addTime.Add(int64(time.Since(t0)))
				if i%50 == 0 {
					// A fresh pod reaches the other node's pod at once.
					if err := pingSoon(sandbox, pods[1], i); err != nil {
						errs[w] = fmt.Errorf("pod %s: %w", id, err)
						return
					}
				}
				if err := labtest.CNIDel(ctx, l, n1, id, sandboxes[w]); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	meanAdd := time.Duration(addTime.Load() / int64(cycles))
	t.Logf("FIGURE CNI churn: %d ADD/DEL cycles, %d in parallel, in %v (%.0f cycles/s, mean ADD %v)",
		cycles, workers, elapsed.Round(time.Millisecond), float64(cycles)/elapsed.Seconds(), meanAdd.Round(100*time.Microsecond))
	if after := cniState(t, l, n1); after != before {
		t.Errorf("after %d cycles node1 holds:\n%s\nbefore it held:\n%s", cycles, after, before)
	}
	for _, s := range sandboxes {
		if got := sandboxLinks(t, s); got != "lo" {
			t.Errorf("sandbox %s holds links %s after its pods' DELs", s, got)
		}
	}

	t.Run("kill -9 mid-ADD, then GC", func(t *testing.T) {
		// How long one ADD takes on its own, to spread the kills over.
		var one time.Duration
		for k := range 3 {
			path := labtest.AddNetns(t, l, fmt.Sprintf("cm%d", k))
			id := fmt.Sprintf("measure-%d", k)
			t0 := time.Now()
			if _, err := labtest.CNIAdd(ctx, l, n1, id, path); err != nil {
				t.Fatal(err)
			}
			one += time.Since(t0) / 3
			if err := labtest.CNIDel(ctx, l, n1, id, path); err != nil {
				t.Fatal(err)
			}
		}
		killed := 0
		var killedNS []string
		for k := range kills {
			path := labtest.AddNetns(t, l, fmt.Sprintf("ck%d", k))
			killedNS = append(killedNS, path)
			// From before the first plugin starts to after the last one is done.
			actx, cancel := context.WithTimeout(ctx, one*time.Duration(k)*5/time.Duration(4*kills))
			if _, err := labtest.CNIAdd(actx, l, n1, fmt.Sprintf("killed-%d", k), path); err != nil {
				killed++
			}
			cancel()
		}
		left := diffLines(before, cniState(t, l, n1))
		t.Logf("FIGURE CNI kill: %d of %d ADDs killed, 0 to %v into an ADD that takes %v; before GC the node held %d veths, %d addresses and %d cache files more",
			killed, kills, (one * 5 / 4).Round(100*time.Microsecond), one.Round(100*time.Microsecond),
			strings.Count(left, "+ veth"), strings.Count(left, "+ file ipam/"), strings.Count(left, "+ file cni-cache/"))
		if strings.Contains(left, "master=\n") || strings.HasSuffix(left, "master=") {
			t.Logf("veths left off the bridge by a kill:\n%s", left)
		}
		if killed == 0 {
			t.Fatalf("no ADD was killed")
		}
		if err := labtest.CNIGC(ctx, l, n1, []string{pods[0].Name}); err != nil {
			t.Fatal(err)
		}
		if after := cniState(t, l, n1); after != before {
			t.Errorf("after GC node1 holds:\n%s\nbefore the kills it held:\n%s", after, before)
		}
		for _, s := range killedNS {
			if got := sandboxLinks(t, s); got != "lo" {
				t.Errorf("sandbox %s holds links %s after GC", s, got)
			}
		}
	})

	time.Sleep(time.Second)
	e2etest.CheckTraffic(t, tr, e2etest.Names(pairs)...)
}

// pingSoon pings dst from a sandbox, a few times within two seconds.
func pingSoon(sandbox ns.NetNS, dst *lab.Pod, seq int) error {
	var err error
	for try := range 4 {
		if err = lab.Ping(sandbox, dst.IP, seq*4+try, 500*time.Millisecond); err == nil {
			return nil
		}
	}
	return err
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// cniState renders what node1 holds for pods: its veths (with their bridge), the IPAM store's
// files (last_reserved_ip and the attachment locks aside, one only moves on and the other is a
// fixed set), libcni's cache files and every iptables rule.
func cniState(t *testing.T, l *lab.Lab, n *lab.Node) string {
	t.Helper()
	var lines []string
	err := l.WithHandle(n, func(h *netlink.Handle) error {
		links, err := h.LinkList()
		if err != nil {
			return err
		}
		names := map[int]string{}
		for _, link := range links {
			names[link.Attrs().Index] = link.Attrs().Name
		}
		for _, link := range links {
			if _, ok := link.(*netlink.Veth); ok && link.Attrs().Name != "eth0" {
				lines = append(lines, fmt.Sprintf("veth %s master=%s", link.Attrs().Name, names[link.Attrs().MasterIndex]))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"ipam", "cni-cache"} {
		root := filepath.Join(n.Dir, dir)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == ipam.AttachmentLocks {
				return fs.SkipDir
			}
			if err != nil || d.IsDir() || d.Name() == "last_reserved_ip" {
				return err
			}
			rel, _ := filepath.Rel(n.Dir, path)
			lines = append(lines, "file "+rel)
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	var out []byte
	err = e2etest.NS(t, l, n.Netns).Do(func(ns.NetNS) error {
		var err error
		out, err = exec.Command("iptables-save").Output()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, "iptables "+counters.ReplaceAllString(line, ""))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// sandboxLinks lists the links of the namespace at path.
func sandboxLinks(t *testing.T, path string) string {
	t.Helper()
	n, err := ns.GetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	links, err := e2etest.Handle(t, n).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return strings.Join(names, " ")
}

// diffLines lists the lines of b that a lacks ("+") and those of a that b lacks ("-").
func diffLines(a, b string) string {
	as, bs := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	var out []string
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "- "+l)
		}
	}
	if len(out) == 0 {
		return "(nothing)"
	}
	return strings.Join(out, "\n")
}
