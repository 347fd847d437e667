// Package backend defines the data-plane interface that weftd drives: the device is made to exist,
// the full desired set of peers goes in, and the implementation makes the kernel match it and
// keeps it so. It also defines the per-peer error every implementation returns and the counters
// weftd exports about its self-healing.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

var (
	// ErrInvalidPeer marks a peer whose data cannot be programmed (bad MAC, overlapping subnet, ...).
	ErrInvalidPeer = errors.New("invalid peer")
	// ErrRefusedPeer marks a peer whose entries the kernel refused as invalid (EINVAL and the like):
	// the peer is left out, its other entries removed, until the next SetPeers.
	ErrRefusedPeer = errors.New("the kernel refused the peer's entries")
)

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
// EnsureDevice creates or repairs the device, idempotently, without touching peer entries. SetPeers
// is idempotent and level-triggered: it takes the complete desired peer set, diffs it against the
// kernel, adds before it deletes, and returns the joined errors of what it could not program
// (a *PeerError for each peer at fault: ErrInvalidPeer for its data, ErrRefusedPeer when the
// kernel refused its entries) while still programming every other peer. Run keeps the
// kernel state converged (self-healing after external changes) until ctx is done. MTU is the
// device's MTU, the largest a pod may use; Stats are the backend's counters.
type Backend interface {
	EnsureDevice(ctx context.Context) error
	SetPeers(peers []Peer) error
	Run(ctx context.Context) error
	MTU() int
	Stats() Stats
}

// PeerError is a failure on one peer's entries: its data is invalid (Err wraps ErrInvalidPeer),
// the kernel refused its entries as invalid (Err wraps ErrRefusedPeer), or another kernel failure
// hit one of its entries (neither: it may well be no fault of the peer's).
type PeerError struct {
	Peer   string
	Subnet netip.Prefix
	// Reason is set when the peer is at fault: why it is left out.
	Reason Reason
	Err    error
}

// Isolated reports whether the failure is the peer's own (invalid or refused data), one that
// leaves every other peer working.
func (e *PeerError) Isolated() bool {
	return errors.Is(e.Err, ErrInvalidPeer) || errors.Is(e.Err, ErrRefusedPeer)
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("peer %q (subnet %s): %v", e.Peer, e.Subnet, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// SplitErrors walks err, a tree of joined and wrapped errors of any depth, and returns the
// per-peer failures in it and every other failure.
func SplitErrors(err error) (peers []*PeerError, other []error) {
	if err == nil {
		return nil, nil
	}
	var pe *PeerError
	if errors.As(err, &pe) && pe == err {
		return []*PeerError{pe}, nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p, o := SplitErrors(e)
			peers, other = append(peers, p...), append(other, o...)
		}
		return peers, other
	}
	if inner := errors.Unwrap(err); inner != nil {
		if p, o := SplitErrors(inner); len(p) > 0 {
			return p, o
		}
	}
	return nil, []error{err}
}

// Trigger says what started a reconcile.
type Trigger int

// Reconcile triggers.
const (
	// TriggerSetPeers: the caller handed a new desired peer set.
	TriggerSetPeers Trigger = iota
	// TriggerEvent: a kernel change notification showed a possible drift (or the loop started).
	TriggerEvent
	// TriggerResync: the periodic full resync.
	TriggerResync
	// TriggerRetry: the retry of a reconcile that failed.
	TriggerRetry
	numTriggers
)

var triggerNames = [numTriggers]string{"set-peers", "event", "resync", "retry"}

func (t Trigger) String() string { return triggerNames[t] }

// Triggers lists every trigger, in order.
func Triggers() []Trigger {
	return []Trigger{TriggerSetPeers, TriggerEvent, TriggerResync, TriggerRetry}
}

// Stats are a backend's cumulative counters.
type Stats struct {
	// Writes counts kernel-changing requests (add, replace, delete, set).
	Writes uint64
	// Reconciles counts reconcile passes by what triggered them; Failures those that failed.
	Reconciles [numTriggers]uint64
	Failures   uint64
	// DeviceCreates counts creations of the device, re-creations after it vanished included.
	DeviceCreates uint64
}

// LoopReconciles counts the reconciles the backend's own loop ran (every trigger but SetPeers):
// while Run works, it grows at least every resync interval.
func (s Stats) LoopReconciles() uint64 {
	return s.Reconciles[TriggerEvent] + s.Reconciles[TriggerResync] + s.Reconciles[TriggerRetry]
}
