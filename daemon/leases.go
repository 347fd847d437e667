package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// gossipPeersFile keeps, in the state dir, the gossip addresses of the peers in the last lease set:
// a weftd restarted while etcd is down joins them at once, so that its peers learn its attributes
// (a new VTEP MAC) through gossip without waiting for etcd.
const gossipPeersFile = "gossip-peers.json"

// ErrBadGossipPeers marks a gossip peers file that cannot be used.
var ErrBadGossipPeers = errors.New("bad gossip peers file")

// leaseHandler returns the function that takes each lease set from etcd: the view gets the leases
// that fit the network config, gossip the peers' addresses to join, and the state dir those
// addresses for the next start.
func (n *node) leaseHandler() func(weftetcd.LeaseSet) {
	misfits := map[netip.Prefix]bool{}
	return func(set weftetcd.LeaseSet) {
		leases, misfit := fitting(n.cfg.network, set.Leases)
		now := map[netip.Prefix]bool{}
		for _, l := range misfit {
			now[l.Subnet] = true
			if !misfits[l.Subnet] {
				n.log.Warn("lease does not fit the network config, not programming it", "subnet", l.Subnet.String(),
					"node", l.Attrs.NodeName, "network", n.cfg.network.Network.String(), "subnet_len", n.cfg.network.SubnetLen)
			}
		}
		misfits = now
		n.view.SetLeases(leases)
		var addrs []netip.AddrPort
		for _, l := range leases {
			if l.Attrs.GossipAddr.IsValid() && l.Attrs.NodeName != n.cfg.name {
				addrs = append(addrs, l.Attrs.GossipAddr)
			}
		}
		n.member.JoinAddrs(addrs)
		n.saveGossipPeers(addrs)
	}
}

// fitting splits leases into those whose subnet is one the network config hands out (inside
// Network, SubnetLen long), which never overlap each other, and the others. A lease of another size,
// written by hand or by a node with another config, may overlap nodes' subnets, and the backend
// refuses overlapping peers all together: one such key would cut good nodes off. Its key still keeps
// its subnets from being handed out.
func fitting(cfg *subnet.Config, leases []subnet.Lease) (fit, misfit []subnet.Lease) {
	for _, l := range leases {
		if cfg.Network.Contains(l.Subnet.Addr()) && l.Subnet.Bits() == cfg.SubnetLen {
			fit = append(fit, l)
		} else {
			misfit = append(misfit, l)
		}
	}
	return fit, misfit
}

// joinSavedPeers hands gossip the addresses saved by the last run, before etcd answers.
func (n *node) joinSavedPeers() {
	path := filepath.Join(n.cfg.stateDir, gossipPeersFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var addrs []netip.AddrPort
	if err == nil {
		addrs, err = parseGossipPeers(data)
	}
	if err != nil {
		n.log.Warn("ignoring the saved gossip peers", "path", path, "err", err)
		return
	}
	n.member.JoinAddrs(addrs)
}

// saveGossipPeers writes addrs to the state dir when they differ from what it holds.
func (n *node) saveGossipPeers(addrs []netip.AddrPort) {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.AddrPort.Compare)
	addrs = slices.Compact(addrs)
	data, err := json.Marshal(addrs)
	if err != nil {
		n.log.Error("encoding the gossip peers", "err", err)
		return
	}
	path := filepath.Join(n.cfg.stateDir, gossipPeersFile)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		n.log.Warn("saving the gossip peers", "path", path, "err", err)
	}
}

// parseGossipPeers decodes a gossip peers file: a JSON array of "ip:port" strings, each a valid
// IPv4 address with a non-zero port.
func parseGossipPeers(data []byte) ([]netip.AddrPort, error) {
	var addrs []netip.AddrPort
	if err := json.Unmarshal(data, &addrs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadGossipPeers, err)
	}
	for i, a := range addrs {
		if !a.Addr().Is4() || a.Port() == 0 {
			return nil, fmt.Errorf("%w: [%d]=%q: want IPv4:port", ErrBadGossipPeers, i, a)
		}
	}
	return addrs, nil
}
