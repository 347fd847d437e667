package gossip

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/subnet"
)

// arrival waits for one member event to reach a given number of nodes.
type arrival struct {
	mu     sync.Mutex
	target string
	ok     func(MemberState) bool
	seen   map[string]bool
	need   int
	done   chan struct{}
}

// arm starts waiting until need nodes other than target have observed an event about target that
// satisfies ok; the returned channel closes then.
func (a *arrival) arm(target string, need int, ok func(MemberState) bool) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.target, a.ok, a.need, a.seen = target, ok, need, map[string]bool{}
	a.done = make(chan struct{})
	return a.done
}

func (a *arrival) observe(node string, s MemberState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil || s.Name != a.target || node == a.target || a.seen[node] || !a.ok(s) {
		return
	}
	a.seen[node] = true
	if len(a.seen) == a.need {
		close(a.done)
		a.done = nil
	}
}

func (a *arrival) wait(b *testing.B, c *testCluster, done chan struct{}, what string) {
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		a.mu.Lock()
		defer a.mu.Unlock()
		var missing []string
		for _, n := range c.nodes {
			if !a.seen[n.name] && n.name != a.target && n.cancel != nil {
				p, _ := peerDetail(n, a.target)
				missing = append(missing, fmt.Sprintf("%s: %+v %+v", n.name, p, p.Gossip))
			}
		}
		b.Fatalf("%s: only %d of %d nodes saw it within 10s; missing:\n%s", what, len(a.seen), a.need, strings.Join(missing, "\n"))
	}
}

// percentile returns the p-th percentile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkDissemination runs in-process clusters of N nodes on loopback with the default
// (LAN) timings and encryption, and measures, over 100 samples each:
//
//   - join: from starting a new node (which joins through the gossip addresses in the leases)
//     until every other node's view has observed it alive;
//   - mac: from SetMeta with a new VTEP MAC on one node until every other node's view has it;
//   - heap-B/node and goroutines/node of the converged cluster.
//
// One run takes about a minute per size: go test -run '^$' -bench Dissemination -benchtime 1x.
func BenchmarkDissemination(b *testing.B) {
	for _, n := range []int{20, 50} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) { benchDissemination(b, n) })
	}
}

func benchDissemination(b *testing.B, n int) {
	const samples = 100
	var arr arrival
	c := newTestCluster(b)
	c.setObserver(arr.observe)
	keys := c.writeKeys("keys", "A")

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	// The churn nodes' leases exist from the start, as leases of nodes that come and go would.
	for i := range samples {
		c.leases = append(c.leases, lease(fmt.Sprintf("churn-%d", i), fmt.Sprintf("10.244.%d.0/24", n+1+i),
			fmt.Sprintf("192.0.2.%d", (n+1+i)%250+1), fmt.Sprintf("02:00:00:00:02:%02x", i), 1))
	}
	var nodes []*testNode
	for i := range n {
		nodes = append(nodes, c.start(fmt.Sprintf("node-%d", i+1), keys))
	}
	for _, t := range nodes {
		waitViews(b, 60*time.Second, nodes, t.name, "alive", alive)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heapPerNode := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
	goroutinesPerNode := float64(runtime.NumGoroutine()-goroutines) / float64(n)

	b.ResetTimer()
	joinStart := time.Now()
	var joins, macs []time.Duration
	for i := range samples {
		name := fmt.Sprintf("churn-%d", i)
		done := arr.arm(name, n, func(s MemberState) bool { return s.Status == StatusAlive })
		start := time.Now()
		churn := c.launch(name, keys, n+1+i, false)
		arr.wait(b, c, done, name+" joining")
		joins = append(joins, time.Since(start))

		gone := arr.arm(name, n, func(s MemberState) bool { return s.Status == StatusGone })
		churn.stop(b)
		arr.wait(b, c, gone, name+" leaving")
	}
	joinPhase := time.Since(joinStart)
	macStart := time.Now()
	for i := range samples {
		node := nodes[i%n]
		meta := node.meta()
		meta.AttrVersion = int64(1000 + i)
		meta.VtepMAC = mac(fmt.Sprintf("02:00:00:%02x:%02x:%02x", i, i%n, n))
		want := meta.VtepMAC.String()
		done := arr.arm(node.name, n-1, func(s MemberState) bool { return s.Meta != nil && s.Meta.VtepMAC.String() == want })
		start := time.Now()
		if err := node.member.SetMeta(meta); err != nil {
			b.Fatal(err)
		}
		arr.wait(b, c, done, node.name+" MAC change")
		macs = append(macs, time.Since(start))
	}
	b.StopTimer()
	b.Logf("join samples took %s, MAC samples %s", joinPhase, time.Since(macStart))
	slices.Sort(joins)
	slices.Sort(macs)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(joins, 50)), "join-p50-ms")
	b.ReportMetric(ms(percentile(joins, 99)), "join-p99-ms")
	b.ReportMetric(ms(percentile(macs, 50)), "mac-p50-ms")
	b.ReportMetric(ms(percentile(macs, 99)), "mac-p99-ms")
	b.ReportMetric(heapPerNode, "heap-B/node")
	b.ReportMetric(goroutinesPerNode, "goroutines/node")
}

// The leases the benchmark pre-creates must not collide with the cluster's own.
var _ = subnet.Lease{}
