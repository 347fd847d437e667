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
	"strings"

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// leaseSetFile keeps, in the state dir, the last lease set etcd showed (the leases that fit the
// network config): a weftd started while etcd is down programs its peers from it and admits their
// gossip members, provisionally, until etcd answers.
const leaseSetFile = "lease-set.json"

// leaseSetKind marks a lease set file, and its format.
const leaseSetKind = "weft-lease-set/v1"

// ErrBadLeaseSet marks a saved lease set that cannot be used.
var ErrBadLeaseSet = errors.New("bad saved lease set")

// leaseHandler returns the function that takes each lease set from etcd: the view gets the leases
// that fit the network config, gossip the peers' addresses to join, and the state dir the leases
// for the next start.
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
		n.useLeases(leases)
		n.saveLeaseSet(leases)
	}
}

// useLeases hands leases to the view, and their nodes' gossip addresses to gossip to join.
func (n *node) useLeases(leases []subnet.Lease) {
	n.view.SetLeases(leases)
	var addrs []netip.AddrPort
	for _, l := range leases {
		if l.Attrs.GossipAddr.IsValid() && l.Attrs.NodeName != n.cfg.name {
			addrs = append(addrs, l.Attrs.GossipAddr)
		}
	}
	n.member.JoinAddrs(addrs)
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

// useSavedLeases programs the peers of the lease set saved by the last run, before etcd answers:
// a node rebooted during an etcd outage reaches its peers at once. etcd's first lease set replaces
// it. A saved lease that does not parse is left out alone.
func (n *node) useSavedLeases() {
	path := filepath.Join(n.cfg.stateDir, leaseSetFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var leases []subnet.Lease
	if err == nil {
		leases, err = parseLeaseSet(data)
	}
	if err != nil {
		n.log.Warn("ignoring (part of) the saved lease set", "path", path, "err", err)
	}
	if len(leases) == 0 {
		return
	}
	n.log.Info("programming peers from the saved lease set until etcd answers", "path", path, "leases", len(leases))
	n.useLeases(leases)
}

// savedLease is one lease in the lease set file: its key, value and etcd create revision.
type savedLease struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value"`
	CreateRevision int64           `json:"createRevision,omitempty"`
}

type leaseSetDoc struct {
	Kind   string       `json:"kind"`
	Leases []savedLease `json:"leases"`
}

// saveLeaseSet writes leases to the state dir when they differ from what it holds.
func (n *node) saveLeaseSet(leases []subnet.Lease) {
	data, err := encodeLeaseSet(leases)
	if err != nil {
		n.log.Error("encoding the lease set", "err", err)
		return
	}
	path := filepath.Join(n.cfg.stateDir, leaseSetFile)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		n.log.Warn("saving the lease set", "path", path, "err", err)
	}
}

// encodeLeaseSet renders leases as a lease set file, sorted by subnet.
func encodeLeaseSet(leases []subnet.Lease) ([]byte, error) {
	doc := leaseSetDoc{Kind: leaseSetKind, Leases: make([]savedLease, 0, len(leases))}
	for _, l := range leases {
		v, err := l.Attrs.MarshalJSON()
		if err != nil {
			return nil, err
		}
		doc.Leases = append(doc.Leases, savedLease{Key: subnet.SubnetKey(l.Subnet), Value: v, CreateRevision: l.CreateRevision})
	}
	slices.SortFunc(doc.Leases, func(a, b savedLease) int { return strings.Compare(a.Key, b.Key) })
	return json.Marshal(doc)
}

// parseLeaseSet decodes a lease set file. A file that is no lease set is an error; a lease in it
// that does not parse is left out and named in the error returned with the others.
func parseLeaseSet(data []byte) ([]subnet.Lease, error) {
	var doc leaseSetDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLeaseSet, err)
	}
	if doc.Kind != leaseSetKind {
		return nil, fmt.Errorf("%w: kind %q, want %q", ErrBadLeaseSet, doc.Kind, leaseSetKind)
	}
	var leases []subnet.Lease
	var errs []error
	for i, e := range doc.Leases {
		sn, err := subnet.ParseSubnetKey(e.Key)
		var attrs *subnet.LeaseAttrs
		if err == nil {
			attrs, err = subnet.ParseLeaseAttrs(e.Value)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: leases[%d] (%q): %w", ErrBadLeaseSet, i, e.Key, err))
			continue
		}
		leases = append(leases, subnet.Lease{Subnet: sn, Attrs: *attrs, CreateRevision: e.CreateRevision})
	}
	return leases, errors.Join(errs...)
}
