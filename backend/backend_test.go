package backend

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

func TestSplitErrors(t *testing.T) {
	s := netip.MustParsePrefix("10.244.9.0/24")
	invalid := &PeerError{Peer: "node-9", Subnet: s, Err: fmt.Errorf("%w: MAC is multicast", ErrInvalidPeer)}
	kernel := &PeerError{Peer: "node-3", Subnet: s, Err: errors.New("route add: file exists")}
	device := errors.New("device weft.1: operation not permitted")
	deep := errors.Join(invalid, fmt.Errorf("reconcile: %w", errors.Join(kernel, device)))
	peers, other := SplitErrors(deep)
	if len(peers) != 2 || peers[0] != invalid || peers[1] != kernel {
		t.Errorf("peer errors %v, want node-9's and node-3's", peers)
	}
	if len(other) != 1 || other[0] != device {
		t.Errorf("other errors %v, want the device's", other)
	}
	if p, o := SplitErrors(nil); p != nil || o != nil {
		t.Errorf("nil split into %v, %v", p, o)
	}
	if !errors.Is(invalid, ErrInvalidPeer) || errors.Is(kernel, ErrInvalidPeer) {
		t.Error("PeerError does not unwrap to its cause")
	}
}
