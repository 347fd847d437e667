package e2etest

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/lab"
)

// PingPair is one direction of traffic that StartTraffic measures.
type PingPair struct {
	Name string
	Src  ns.NetNS
	Dst  netip.Addr
}

// PodPair is traffic from pod src to pod dst, named "src→dst".
func PodPair(t *testing.T, l *lab.Lab, src, dst *lab.Pod) PingPair {
	t.Helper()
	return PingPair{Name: src.Name + "→" + dst.Name, Src: NS(t, l, src.Netns), Dst: dst.IP}
}

// NodePair is traffic from node src to pod dst, named "src→dst".
func NodePair(t *testing.T, l *lab.Lab, src *lab.Node, dst *lab.Pod) PingPair {
	t.Helper()
	return PingPair{Name: src.Name + "→" + dst.Name, Src: NS(t, l, src.Netns), Dst: dst.IP}
}

// Traffic pings every pair at 10 Hz. Each ping waits up to a second for its reply on its own, so
// the rate holds while replies are lost.
type Traffic struct {
	done  chan struct{}
	wg    sync.WaitGroup
	pairs []*pairLog
}

type pairLog struct {
	PingPair
	mu sync.Mutex
	// answered holds, by sequence number, whether each ping was answered.
	answered []bool
}

// TrafficStats sums up one pair's pings.
type TrafficStats struct {
	Name       string
	Sent, Lost int
	// Outage is the longest run of lost pings, as time (one ping per 100 ms).
	Outage time.Duration
	// TailOK counts the successful pings at the end, after the last loss.
	TailOK int
}

func (s TrafficStats) String() string {
	return fmt.Sprintf("%s: %d pings, %d lost, longest outage %v", s.Name, s.Sent, s.Lost, s.Outage)
}

// StartTraffic starts pinging every pair; the traffic stops when t ends at the latest.
func StartTraffic(t *testing.T, pairs ...PingPair) *Traffic {
	t.Helper()
	tr := &Traffic{done: make(chan struct{})}
	for _, p := range pairs {
		pl := &pairLog{PingPair: p}
		tr.pairs = append(tr.pairs, pl)
		tr.wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			var pings sync.WaitGroup
			defer pings.Wait()
			for seq := 0; ; seq++ {
				select {
				case <-tr.done:
					return
				case <-tick.C:
				}
				pl.mu.Lock()
				pl.answered = append(pl.answered, false)
				pl.mu.Unlock()
				pings.Go(func() {
					ok := lab.Ping(pl.Src, pl.Dst, seq, time.Second) == nil
					pl.mu.Lock()
					pl.answered[seq] = ok
					pl.mu.Unlock()
				})
			}
		})
	}
	t.Cleanup(func() { tr.Stop() })
	return tr
}

// Stop ends the traffic (once) and returns each pair's figures, in the order of the pairs.
func (tr *Traffic) Stop() []TrafficStats {
	select {
	case <-tr.done:
	default:
		close(tr.done)
	}
	tr.wg.Wait()
	out := make([]TrafficStats, len(tr.pairs))
	for i, pl := range tr.pairs {
		s := TrafficStats{Name: pl.Name, Sent: len(pl.answered)}
		run := 0
		for _, ok := range pl.answered {
			if ok {
				run = 0
				s.TailOK++
				continue
			}
			s.Lost++
			s.TailOK = 0
			run++
			s.Outage = max(s.Outage, time.Duration(run)*100*time.Millisecond)
		}
		out[i] = s
	}
	return out
}

// CheckTraffic stops the traffic, logs every pair's figures and fails for each pair named in
// lossless that lost a ping and for each pair that did not end with at least 5 answered pings.
func CheckTraffic(t *testing.T, tr *Traffic, lossless ...string) []TrafficStats {
	t.Helper()
	stats := tr.Stop()
	for _, s := range stats {
		t.Log(s)
		switch {
		case slices.Contains(lossless, s.Name) && s.Lost > 0:
			t.Errorf("%s lost %d of %d pings", s.Name, s.Lost, s.Sent)
		case s.TailOK < 5:
			t.Errorf("%s did not recover: only the last %d of %d pings were answered", s.Name, s.TailOK, s.Sent)
		}
	}
	return stats
}

// Names returns the pairs' names.
func Names(pairs []PingPair) []string {
	names := make([]string, len(pairs))
	for i, p := range pairs {
		names[i] = p.Name
	}
	return names
}
