// Package backend defines the data-plane interface that weftd drives: the full desired set of peers
// goes in, and the implementation makes the kernel match it.
package backend

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// ErrInvalidPeer marks a peer whose data cannot be programmed (bad MAC, overlapping subnet, ...).
var ErrInvalidPeer = errors.New("invalid peer")

// Peer is one remote node as the data plane needs it.
type Peer struct {
	// Name is the peer's node name, for logs and metrics only.
	Name string
	// Subnet is the peer's pod CIDR, e.g. 10.244.7.0/24.
	Subnet netip.Prefix
	// PublicIP is the peer's underlay address, the VXLAN tunnel endpoint.
	PublicIP netip.Addr
	// VtepMAC is the MAC address of the peer's VXLAN device.
	VtepMAC net.HardwareAddr
}

// Backend programs the kernel so that every peer's subnet is reachable.
//
// SetPeers is idempotent and level-triggered: it takes the complete desired peer set, diffs it
// against the kernel, adds before it deletes, and returns the joined errors of the peers it could not
// program while still programming every other peer. Run keeps the kernel state converged (self-healing
// after external changes) until ctx is done.
type Backend interface {
	SetPeers(peers []Peer) error
	Run(ctx context.Context) error
}
