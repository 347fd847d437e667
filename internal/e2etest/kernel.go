package e2etest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/lab"
)

// InNode runs fn with an iptables handle inside node's namespace.
func InNode(t *testing.T, l *lab.Lab, n *lab.Node, fn func(*iptables.IPTables) error) error {
	t.Helper()
	return NS(t, l, n.Netns).Do(func(ns.NetNS) error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		return fn(ipt)
	})
}

// WeftRules renders weft's iptables chains in node's namespace, and the jumps to them, as text.
func WeftRules(t *testing.T, l *lab.Lab, n *lab.Node) string {
	t.Helper()
	var b strings.Builder
	err := InNode(t, l, n, func(ipt *iptables.IPTables) error {
		for _, c := range [][2]string{{"filter", "FORWARD"}, {"filter", "WEFT-FWD"}, {"nat", "POSTROUTING"}, {"nat", "WEFT-POSTRTG"}} {
			ok, err := ipt.ChainExists(c[0], c[1])
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintf(&b, "%s/%s missing\n", c[0], c[1])
				continue
			}
			rules, err := ipt.List(c[0], c[1])
			if err != nil {
				return err
			}
			for _, r := range rules {
				if strings.Contains(r, "WEFT") || strings.Contains(r, "weft") {
					fmt.Fprintf(&b, "%s %s\n", c[0], r)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// EntryWatch samples, every 10 ms, peers' entries for subnet s and counts the samples in which
// they were not exactly want at dst.
type EntryWatch struct {
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples int
	bad     []string
}

// WatchEntries starts sampling peers' entries for s, which must send want's frames to dst.
func WatchEntries(l *lab.Lab, peers []*lab.Node, s netip.Prefix, want net.HardwareAddr, dst netip.Addr) *EntryWatch {
	w := &EntryWatch{done: make(chan struct{})}
	w.wg.Go(func() {
		for {
			for _, p := range peers {
				err := l.CheckPeer(p, backend.Peer{Subnet: s, PublicIP: dst, VtepMAC: want})
				w.mu.Lock()
				w.samples++
				if err != nil {
					w.bad = append(w.bad, fmt.Sprintf("%s at %s: %v", p.Name, time.Now().Format("15:04:05.000"), err))
				}
				w.mu.Unlock()
			}
			select {
			case <-w.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return w
}

// stop returns the number of samples and the bad ones.
func (w *EntryWatch) stop() (int, []string) {
	close(w.done)
	w.wg.Wait()
	return w.samples, w.bad
}

// CheckEntries stops w and fails if any sample was bad.
func CheckEntries(t *testing.T, w *EntryWatch, what string) {
	t.Helper()
	n, bad := w.stop()
	t.Logf("%s: %d samples of the peers' entries, %d not as expected", what, n, len(bad))
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d samples not as expected, first: %s", what, len(bad), n, bad[0])
	}
}

// Handle returns a netlink handle in namespace n, closed when t ends.
func Handle(t *testing.T, n ns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", n.Path(), err)
	}
	t.Cleanup(h.Close)
	return h
}
