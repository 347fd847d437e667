package reboot

import (
	"net"
	"net/netip"
	"time"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/lab"
)

// macWatch samples, every 10 ms, the MAC of a node's VXLAN device and every peer's entries for
// the node's subnet, and records when each first shows want.
type macWatch struct {
	done   chan struct{}
	result chan macTimes
}

// macTimes are when the node's device and each peer first carried the wanted MAC.
type macTimes struct {
	device time.Time
	peers  map[string]time.Time
	last   map[string]error
}

// propagation is how long after the device the last peer programmed the MAC (0 when the peers
// were first).
func (m macTimes) propagation() time.Duration {
	var last time.Time
	for _, at := range m.peers {
		if at.After(last) {
			last = at
		}
	}
	return max(0, last.Sub(m.device))
}

func watchMAC(l *lab.Lab, node *lab.Node, peers []*lab.Node, s netip.Prefix, want net.HardwareAddr) *macWatch {
	w := &macWatch{done: make(chan struct{}), result: make(chan macTimes, 1)}
	go func() {
		res := macTimes{peers: map[string]time.Time{}, last: map[string]error{}}
		defer func() { w.result <- res }()
		for {
			now := time.Now()
			if res.device.IsZero() {
				if mac, err := l.VTEPMAC(node); err == nil && mac.String() == want.String() {
					res.device = now
				}
			}
			for _, p := range peers {
				if _, ok := res.peers[p.Name]; ok {
					continue
				}
				err := l.CheckPeer(p, backend.Peer{Subnet: s, PublicIP: node.IP, VtepMAC: want})
				res.last[p.Name] = err
				if err == nil {
					res.peers[p.Name] = now
				}
			}
			if !res.device.IsZero() && len(res.peers) == len(peers) {
				return
			}
			select {
			case <-w.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

// wait returns the times once every peer has the MAC, or what was seen by timeout.
func (w *macWatch) wait(timeout time.Duration) macTimes {
	select {
	case r := <-w.result:
		return r
	case <-time.After(timeout):
		close(w.done)
		return <-w.result
	}
}
