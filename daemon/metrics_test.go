package daemon

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/doctest"
)

// registeredMetrics returns the names of weft's metrics as weftd's registry gathers them, with every
// labelled metric given a value so that it shows.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	one := func() float64 { return 1 }
	m := newMetrics(gauges{
		etcdUp: one, ready: one, leaseExpiry: one, gossipMembers: one, rejectedClaims: one, refused: one,
		peersBySource: func() map[string]float64 { return map[string]float64{"etcd": 1} },
		peerReachable: func() map[string]float64 { return map[string]float64{"n2": 1} },
		peersRejected: func() map[string]float64 { return map[string]float64{"invalid": 1} },
		backend:       func() backend.Stats { return backend.Stats{} },
	})
	m.observeSetPeers(0)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "weft_") {
			out[f.GetName()] = true
		}
	}
	return out
}

// TestMetricsTable compares the metrics docs/operations.md lists with those weftd registers.
func TestMetricsTable(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := doctest.Section(t, string(doc), "metrics")
	documented := map[string]bool{}
	for _, r := range doctest.Rows(t, body) {
		name, _, _ := strings.Cut(strings.Trim(r[0], "`"), "{")
		documented[name] = true
	}
	registered := registeredMetrics(t)
	for _, name := range slices.Sorted(maps.Keys(registered)) {
		if !documented[name] {
			t.Errorf("weftd registers %s, operations.md does not list it", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if !registered[name] {
			t.Errorf("operations.md lists %s, which weftd does not register", name)
		}
	}
}

// TestReconcileMetricsByTrigger: the backend's counters reach /metrics per trigger.
func TestReconcileMetricsByTrigger(t *testing.T) {
	st := backend.Stats{Writes: 7, Failures: 2, DeviceCreates: 1}
	st.Reconciles[backend.TriggerSetPeers], st.Reconciles[backend.TriggerEvent], st.Reconciles[backend.TriggerResync] = 3, 5, 11
	m := newMetrics(gauges{
		etcdUp: func() float64 { return 0 }, ready: func() float64 { return 0 }, leaseExpiry: func() float64 { return 0 },
		gossipMembers: func() float64 { return 0 }, rejectedClaims: func() float64 { return 0 }, refused: func() float64 { return 0 },
		peersBySource: func() map[string]float64 { return nil }, peerReachable: func() map[string]float64 { return nil },
		peersRejected: func() map[string]float64 { return nil },
		backend:       func() backend.Stats { return st },
	})
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[key] = mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"weft_reconcile_total{trigger=set-peers}": 3, "weft_reconcile_total{trigger=event}": 5,
		"weft_reconcile_total{trigger=resync}": 11, "weft_reconcile_total{trigger=retry}": 0,
		"weft_reconcile_errors_total": 2, "weft_kernel_writes_total": 7, "weft_device_creations_total": 1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %t), want %v", k, g, ok, v)
		}
	}
}
