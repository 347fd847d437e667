package peerview

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/gossip"
)

// arrival waits for one member event to reach a given number of nodes.
type arrival struct {
	mu     sync.Mutex
	target string
	ok     func(gossip.MemberState) bool
	seen   map[string]bool
	need   int
	done   chan struct{}
}

// arm starts waiting until need nodes other than target have observed an event about target that
// satisfies ok; the returned channel closes then.
func (a *arrival) arm(target string, need int, ok func(gossip.MemberState) bool) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.target, a.ok, a.need, a.seen = target, ok, need, map[string]bool{}
	a.done = make(chan struct{})
	return a.done
}

func (a *arrival) observe(node string, s gossip.MemberState) {
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

// missTimeout is how long a sample may take before it counts as a miss: some node did not get
// the broadcast and waits for the next push/pull (every 15 to 30s) to learn it.
const missTimeout = 5 * time.Second

// wait waits for the armed event and reports whether it arrived everywhere within missTimeout;
// when not, it logs the nodes that missed it.
func (a *arrival) wait(b *testing.B, done chan struct{}, what string) bool {
	select {
	case <-done:
		return true
	case <-time.After(missTimeout):
		a.mu.Lock()
		defer a.mu.Unlock()
		b.Logf("%s: only %d of %d nodes saw it within %s", what, len(a.seen), a.need, missTimeout)
		a.done = nil
		return false
	}
}

// settledHeap returns the live heap once it has stopped shrinking for a second (at most 20s):
// memberlist's suspicion timers keep clusters that were shut down alive for a few seconds more.
func settledHeap(b *testing.B) uint64 {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(20 * time.Second)
	var last []uint64
	for {
		runtime.GC()
		var st runtime.MemStats
		runtime.ReadMemStats(&st)
		last = append(last, st.HeapAlloc)
		if n := len(last); n >= 3 && last[n-1] >= last[n-3]*99/100 {
			return st.HeapAlloc
		}
		if time.Now().After(deadline) {
			b.Logf("live heap still shrinking after 20s: %v", last)
			return st.HeapAlloc
		}
		<-tick.C
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
//   - heap-B/node and goroutines/node of the converged cluster;
//   - misses: samples that had not reached every node after 5s (they count with their full
//     duration in the percentiles).
//
// Both sizes take about a minute and a half together:
//
//	go test -run '^$' -bench Dissemination -benchtime 1x ./gossip/
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

	before := settledHeap(b)
	goroutines := runtime.NumGoroutine()
	// The churn nodes' leases exist from the start, as leases of nodes that come and go would.
	c.mu.Lock()
	for i := range samples {
		c.leases = append(c.leases, lease(fmt.Sprintf("churn-%d", i), fmt.Sprintf("10.244.%d.0/24", n+1+i),
			fmt.Sprintf("192.0.2.%d", (n+1+i)%250+1), fmt.Sprintf("02:00:00:00:02:%02x", i), 1))
	}
	c.mu.Unlock()
	var nodes []*testNode
	for i := range n {
		nodes = append(nodes, c.start(fmt.Sprintf("node-%d", i+1), keys))
	}
	for _, t := range nodes {
		waitViews(b, 60*time.Second, nodes, t.name, "alive", alive)
	}
	heapPerNode := float64(int64(settledHeap(b))-int64(before)) / float64(n)
	goroutinesPerNode := float64(runtime.NumGoroutine()-goroutines) / float64(n)

	b.ResetTimer()
	joinStart := time.Now()
	var joins, macs []time.Duration
	misses := 0
	// Each churn node leaves while the next one joins, as in a rolling restart.
	var leaving sync.WaitGroup
	for i := range samples {
		name := fmt.Sprintf("churn-%d", i)
		done := arr.arm(name, n, func(s gossip.MemberState) bool { return s.Status == gossip.StatusAlive })
		start := time.Now()
		churn := c.launch(name, keys, n+1+i, false)
		if !arr.wait(b, done, name+" joining") {
			misses++
		}
		joins = append(joins, time.Since(start))
		leaving.Go(func() { churn.stop(b) })
	}
	leaving.Wait()
	joinPhase := time.Since(joinStart)
	macStart := time.Now()
	for i := range samples {
		node := nodes[i%n]
		meta := node.meta()
		meta.AttrVersion = int64(1000 + i)
		meta.VtepMAC = mac(fmt.Sprintf("02:00:00:%02x:%02x:%02x", i, i%n, n))
		want := meta.VtepMAC.String()
		done := arr.arm(node.name, n-1, func(s gossip.MemberState) bool { return s.Meta != nil && s.Meta.VtepMAC.String() == want })
		start := time.Now()
		if err := node.member.SetMeta(meta); err != nil {
			b.Fatal(err)
		}
		if !arr.wait(b, done, node.name+" MAC change") {
			misses++
		}
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
	b.ReportMetric(float64(misses), "misses")
}
