package gossip

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestRefusals(t *testing.T) {
	var r refusals
	t0 := time.Unix(1000, 0)
	addr := netip.MustParseAddrPort("192.0.2.66:7946")
	if !r.note("mallory", addr, t0) || r.note("mallory", addr, t0.Add(time.Second)) {
		t.Fatal("a member refused twice in a window is logged once")
	}
	if !r.note("mallory", addr, t0.Add(RefusedWindow)) {
		t.Fatal("a refusal is logged again once the window has passed")
	}
	logged := 0
	for i := range 100000 {
		if r.note(fmt.Sprintf("forged-%d", i), addr, t0.Add(RefusedWindow+time.Duration(i))) {
			logged++
		}
	}
	if n := r.count(t0.Add(RefusedWindow + time.Second)); n != MaxRefused {
		t.Errorf("after 100000 forged names %d remembered, want %d", n, MaxRefused)
	}
	if logged != maxRefusedLogs-1 {
		t.Errorf("%d of 100000 forged names logged in one window, want %d", logged, maxRefusedLogs-1)
	}
	if n := r.count(t0.Add(3 * RefusedWindow)); n != 0 {
		t.Errorf("%d refusals remembered after the window, want 0", n)
	}
}
