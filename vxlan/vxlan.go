// Package vxlan is weft's VXLAN data plane: it owns the weft.<VNI> device and keeps, for every
// peer, one permanent neighbour entry, one FDB entry and one route in the kernel, repairing them
// whenever they drift.
//
// All kernel access goes through an injected *netlink.Handle opened in the target network
// namespace; the namespace handle itself is only used to subscribe to kernel change events there
// and to issue the ethtool ioctl for tx checksum offload.
package vxlan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weft-net/weft/backend"
)

var (
	// ErrRouteConflict marks a peer route that cannot be added because a route weft does not own
	// already holds the same destination.
	ErrRouteConflict = errors.New("route conflicts with a route weft does not own")
	// ErrAlreadyRunning is returned by Run when the backend is already running.
	ErrAlreadyRunning = errors.New("vxlan backend already running")
)

var _ backend.Backend = (*Backend)(nil)

// Backend programs one VXLAN device and its peers. It is safe for concurrent use: SetPeers may be
// called from any goroutine while Run runs.
type Backend struct {
	cfg Config
	h   *netlink.Handle
	nsh netns.NsHandle
	log *slog.Logger

	mac        mac
	mtu        int
	underlay   Underlay
	txChecksum bool

	// mu serializes every change to the kernel and guards txIndex.
	mu sync.Mutex
	// txIndex is the ifindex of the device whose tx checksum offload was last applied.
	txIndex int

	want atomic.Pointer[desired]
	// peersKnown is set by the first SetPeers. Until then reconciles only ensure the device and
	// keep every peer entry the kernel holds, so a restarted daemon never flushes the datapath
	// before it knows the peer set.
	peersKnown atomic.Bool
	devIndex   atomic.Int64
	running    atomic.Bool
	stats      counters
}

// New validates cfg (after applying defaults), resolves the underlay link, local IP and MTU through
// h, and loads or creates the VTEP MAC. h must be a handle opened in the network namespace nsh
// (netlink.NewHandleAt(nsh)); both stay owned by the caller and must outlive the Backend. New does
// not change the kernel: EnsureDevice, SetPeers and Run do.
func New(cfg Config, h *netlink.Handle, nsh netns.NsHandle) (*Backend, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: netlink handle is nil", ErrInvalidConfig)
	}
	if !nsh.IsOpen() {
		return nil, fmt.Errorf("%w: network namespace handle is not open", ErrInvalidConfig)
	}
	b := &Backend{
		cfg: cfg,
		h:   h,
		nsh: nsh,
		log: cfg.Logger.With("component", "vxlan", "device", cfg.Device),
	}
	if err := b.resolveUnderlay(); err != nil {
		return nil, err
	}
	hw, err := vtepMAC(cfg.StateDir, cfg.Device, cfg.NodeName, cfg.VNI)
	if err != nil {
		return nil, err
	}
	copy(b.mac[:], hw)
	release, err := kernelRelease()
	if err != nil {
		return nil, err
	}
	if b.txChecksum, err = wantTxChecksum(cfg.TxChecksumOffload, release); err != nil {
		return nil, fmt.Errorf("TxChecksumOffload %s: %w", cfg.TxChecksumOffload, err)
	}
	b.want.Store(&desired{})
	b.log.Info("vxlan backend configured", "vni", cfg.VNI, "port", cfg.Port, "local", b.underlay.IP,
		"underlay", b.underlay.Link, "mtu", b.mtu, "mac", b.mac, "tx_checksum", b.txChecksum)
	return b, nil
}

// MAC returns the VTEP MAC of the device, to be published in the node's lease.
func (b *Backend) MAC() net.HardwareAddr { return b.mac.hw() }

// MTU returns the MTU of the device: Config.MTU, or the underlay MTU minus the VXLAN overhead.
func (b *Backend) MTU() int { return b.mtu }

// LocalIP returns the local VTEP address: Config.LocalIP or the one found on the underlay link.
func (b *Backend) LocalIP() netip.Addr { return b.underlay.IP }

// EnsureDevice creates, repairs or recreates the device so that it matches the configuration, is
// up and carries the node subnet's network address. It does not touch peer entries.
func (b *Backend) EnsureDevice(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.ensureDeviceLocked()
	return err
}

// SetPeers makes peers the complete desired peer set and reconciles the kernel with it. Each invalid
// peer yields an error wrapping backend.ErrInvalidPeer and is left out; every valid peer is still
// programmed. Kernel failures are joined into the returned error as well.
func (b *Backend) SetPeers(peers []backend.Peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, errs := b.buildDesired(peers)
	b.want.Store(d)
	b.peersKnown.Store(true)
	if err := b.reconcileLocked(backend.TriggerSetPeers); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reconcile brings the device and every peer entry in line with the desired state; trigger says
// why, for the counters.
func (b *Backend) reconcile(trigger backend.Trigger) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reconcileLocked(trigger)
}

// reconcileLocked ensures the device and syncs the peers. A peer whose entries the kernel refuses
// is skipped alone: it leaves the desired state until the next SetPeers, and a second sync removes
// what of it was written. A reconcile whose only errors are such peers' does not count as failed.
func (b *Backend) reconcileLocked(trigger backend.Trigger) error {
	b.stats.reconciles[trigger].Add(1)
	dev, err := b.ensureDeviceLocked()
	if err == nil && b.peersKnown.Load() {
		err = b.syncPeers(dev, b.want.Load())
		if drop := refusedSubnets(err); len(drop) > 0 {
			d := b.want.Load().without(drop)
			b.want.Store(d)
			err = errors.Join(err, b.syncPeers(dev, d))
		}
	}
	if peers, other := backend.SplitErrors(err); len(other) > 0 || slices.ContainsFunc(peers, notIsolated) {
		b.stats.failures.Add(1)
	}
	return err
}

func notIsolated(e *backend.PeerError) bool { return !e.Isolated() }

// refusedSubnets are the subnets of the peers in err whose entries the kernel refused.
func refusedSubnets(err error) map[netip.Prefix]bool {
	peers, _ := backend.SplitErrors(err)
	var out map[netip.Prefix]bool
	for _, p := range peers {
		if errors.Is(p, backend.ErrRefusedPeer) {
			if out == nil {
				out = map[netip.Prefix]bool{}
			}
			out[p.Subnet] = true
		}
	}
	return out
}

type counters struct {
	writes, failures, deviceCreates atomic.Uint64
	reconciles                      [len(backend.Stats{}.Reconciles)]atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (b *Backend) Stats() backend.Stats {
	s := backend.Stats{
		Writes:        b.stats.writes.Load(),
		Failures:      b.stats.failures.Load(),
		DeviceCreates: b.stats.deviceCreates.Load(),
	}
	for i := range s.Reconciles {
		s.Reconciles[i] = b.stats.reconciles[i].Load()
	}
	return s
}

// write counts one kernel-changing netlink request and passes its error through.
func (b *Backend) write(err error) error {
	b.stats.writes.Add(1)
	return err
}
