package peerview

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/subnet"
)

// TestDuplicateSubnetWinnerIsStable: two keys for one subnet (10.244.37.0-24 and
// 10.244.37.0-24&fd00::-64) give the same programmed owner in every emit, whatever the order of
// the lease set and the unrelated churn around it.
func TestDuplicateSubnetWinnerIsStable(t *testing.T) {
	var got []backend.Peer
	v := newTestView(t, func(ps []backend.Peer) {
		i := slices.IndexFunc(ps, func(p backend.Peer) bool { return p.Subnet == netip.MustParsePrefix("10.244.37.0/24") })
		if i < 0 {
			t.Errorf("emit without 10.244.37.0/24: %v", ps)
			return
		}
		got = append(got, ps[i])
	})
	owner := created(lease("owner", "10.244.37.0/24", "192.0.2.37", "02:00:00:00:00:37", 1), 120)
	rival := created(lease("rival", "10.244.37.0/24", "192.0.2.38", "02:00:00:00:00:38", 99), 121)
	rng := rand.New(rand.NewPCG(7, 9))
	for i := range 100 {
		set := []subnet.Lease{owner, rival}
		// Unrelated churn: a different set of other leases in every emit, so each one reaches the sink.
		for j := range 1 + i%5 {
			sn := fmt.Sprintf("10.244.%d.0/24", 100+(i+j)%50)
			set = append(set, created(lease(fmt.Sprintf("n%d", (i+j)%50), sn, fmt.Sprintf("192.0.2.%d", 100+(i+j)%50),
				fmt.Sprintf("02:00:00:00:01:%02x", (i+j)%50), int64(i)), int64(1000+i)))
		}
		rng.Shuffle(len(set), func(a, b int) { set[a], set[b] = set[b], set[a] })
		v.SetLeases(set)
		v.flush()
	}
	if len(got) != 100 {
		t.Fatalf("%d emits, want 100", len(got))
	}
	for i, p := range got {
		if p.Name != "owner" || p.PublicIP != owner.Attrs.PublicIP {
			t.Fatalf("emit %d programs %s at %s for 10.244.37.0/24, want owner, the older key", i, p.Name, p.PublicIP)
		}
	}
	snap := v.Snapshot()
	if len(snap.Rejected) != 1 || snap.Rejected[0].Name != "rival" || snap.Rejected[0].Reason != string(backend.ReasonDuplicate) {
		t.Fatalf("rejected %+v, want rival as a duplicate", snap.Rejected)
	}
}

// countHandler counts the records with one message.
type countHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestRejectionLoggedOnce: a rejected peer is logged when it becomes rejected or its problem
// changes, not at every lease set.
func TestRejectionLoggedOnce(t *testing.T) {
	var n atomic.Int64
	cfg := DefaultViewConfig()
	cfg.LocalNode = "local"
	cfg.Logger = slog.New(countHandler{msg: "peer rejected, not programming it", n: &n})
	v, err := NewView(cfg, func([]backend.Peer) {})
	if err != nil {
		t.Fatal(err)
	}
	v.SetLocal(testLocal)
	bad := lease("bad", "10.244.4.0/24", "192.0.2.255", "02:00:00:00:00:04", 1)
	steps := []struct {
		leases []subnet.Lease
		logged int64
	}{
		{[]subnet.Lease{leaseB, bad}, 1},
		{[]subnet.Lease{leaseB, bad}, 1},
		{[]subnet.Lease{bad, leaseB, leaseC}, 1}, // unrelated churn
		{[]subnet.Lease{leaseB, lease("bad", "10.244.4.0/24", "192.0.2.0", "02:00:00:00:00:04", 2)}, 2}, // a new problem
		{[]subnet.Lease{leaseB}, 2},
		{[]subnet.Lease{leaseB, bad}, 3}, // rejected again after it had gone
	}
	for i, s := range steps {
		v.SetLeases(s.leases)
		v.flush()
		if got := n.Load(); got != s.logged {
			t.Fatalf("step %d: %d rejection logs, want %d", i, got, s.logged)
		}
	}
}
