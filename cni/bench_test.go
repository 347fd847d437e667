package cni_test

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/weft-net/weft/internal/nstest"
)

// BenchmarkAttach measures ADD and DEL exec'd through libcni as a runtime does, for weft and for
// the reference chain bridge + host-local in the same run, one at a time and 8 in parallel. Every
// pod gets its own netns. It reports latency percentiles and the ADD rate:
//
//	go test -run '^$' -bench BenchmarkAttach -benchtime 100x ./cni/
//
// Goals (see issue 6): weft ADD p50 ≤ 0.6× the reference's, ≤ 40 ms; ADD p99 ≤ 120 ms; DEL p50
// ≤ 30 ms; ≥ 25 ADD/s with 8 in parallel.
func BenchmarkAttach(b *testing.B) {
	n := newNode(b, testEnv)
	chains := []struct {
		name string
		list *libcni.NetworkConfigList
	}{
		{"weft", n.list("1.0.0", "")},
		{"reference", referenceList(b, n)},
	}
	var run atomic.Int64
	for _, workers := range []int{1, 8} {
		for _, c := range chains {
			b.Run(fmt.Sprintf("%s/workers=%d", c.name, workers), func(b *testing.B) {
				benchAttach(b, n, c.list, workers, fmt.Sprintf("%s-%d", c.name, run.Add(1)))
			})
		}
	}
}

// referenceList is the chain weft replaces: the bridge plugin delegating to host-local, with the same
// gateway, default route, MTU and hairpin settings on another bridge and subnet.
func referenceList(b *testing.B, n *node) *libcni.NetworkConfigList {
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"reference","plugins":[{"type":"bridge","bridge":"cniref0",
		"isDefaultGateway":true,"hairpinMode":true,"mtu":1450,
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.8.0/24","gateway":"10.244.8.1"}]],"dataDir":%q}}]}`,
		n.dir+"/host-local")
	l, err := libcni.ConfListFromBytes([]byte(conf))
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func benchAttach(b *testing.B, n *node, l *libcni.NetworkConfigList, workers int, prefix string) {
	b.StopTimer()
	pods := make([]*libcni.RuntimeConf, b.N)
	for i := range pods {
		pods[i] = runtimeConf(fmt.Sprintf("%s-%d", prefix, i), "eth0", nstest.New(b).Path())
	}
	addLat := make([]time.Duration, b.N)
	delLat := make([]time.Duration, b.N)
	b.StartTimer()
	start := time.Now()
	parallel(workers, b.N, func(i int) {
		t0 := time.Now()
		if _, err := n.add(l, pods[i]); err != nil {
			b.Errorf("ADD %s: %v", pods[i].ContainerID, err)
		}
		addLat[i] = time.Since(t0)
	})
	addWall := time.Since(start)
	parallel(workers, b.N, func(i int) {
		t0 := time.Now()
		if err := n.del(l, pods[i]); err != nil {
			b.Errorf("DEL %s: %v", pods[i].ContainerID, err)
		}
		delLat[i] = time.Since(t0)
	})
	b.StopTimer()
	b.ReportMetric(percentile(addLat, 50), "add-p50-ms")
	b.ReportMetric(percentile(addLat, 99), "add-p99-ms")
	b.ReportMetric(percentile(delLat, 50), "del-p50-ms")
	b.ReportMetric(percentile(delLat, 99), "del-p99-ms")
	b.ReportMetric(float64(b.N)/addWall.Seconds(), "adds/s")
}

// parallel calls fn(0) to fn(count-1) from workers goroutines.
func parallel(workers, count int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < count; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// percentile returns the p-th percentile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := max(int(math.Ceil(p/100*float64(len(s))))-1, 0)
	return float64(s[rank]) / float64(time.Millisecond)
}
