package peerview

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
)

// rejectedPeer is a lease the view leaves out of the desired set, and why.
type rejectedPeer struct {
	lease subnet.Lease
	// peer holds the attributes the lease would have programmed.
	peer   backend.Peer
	reason backend.Reason
	detail string
}

// rejectKey identifies a rejected lease across lease sets, for logging each rejection once.
type rejectKey struct {
	subnet  netip.Prefix
	created int64
	node    string
	ip      netip.Addr
}

func (r *rejectedPeer) key() rejectKey {
	return rejectKey{r.lease.Subnet, r.lease.CreateRevision, r.lease.Attrs.NodeName, r.peer.PublicIP}
}

func (r *rejectedPeer) api() nodeapi.RejectedPeer {
	return nodeapi.RejectedPeer{
		Name: r.peer.Name, Subnet: r.lease.Subnet, PublicIP: r.peer.PublicIP, VtepMAC: r.peer.VtepMAC.String(),
		CreateRevision: r.lease.CreateRevision, Reason: string(r.reason), Detail: r.detail,
	}
}

// leaseRejected is lease l rejected before any merge with gossip.
func leaseRejected(l subnet.Lease, reason backend.Reason, detail string) rejectedPeer {
	return rejectedPeer{
		lease:  l,
		peer:   backend.Peer{Name: peerName(&l), Subnet: l.Subnet, PublicIP: l.Attrs.PublicIP, VtepMAC: l.Attrs.VtepMAC},
		reason: reason, detail: detail,
	}
}

// endpointRejected is p rejected by backend.Local.CheckEndpoint with err, a *backend.PeerError.
func endpointRejected(p peerInfo, err error) rejectedPeer {
	r := rejectedPeer{lease: p.lease, peer: p.peer, reason: backend.ReasonInvalid, detail: err.Error()}
	if pe := (*backend.PeerError)(nil); errors.As(err, &pe) {
		r.reason, r.detail = pe.Reason, pe.Err.Error()
	}
	if p.source == nodeapi.SourceGossip {
		r.detail += " (attributes from gossip)"
	}
	return r
}

// peerName is how a lease's peer is named: its node, or its public IP for a flannel node.
func peerName(l *subnet.Lease) string {
	if l.Attrs.NodeName != "" {
		return l.Attrs.NodeName
	}
	return l.Attrs.PublicIP.String()
}

// older orders leases oldest first: by the etcd revision that created the key, then, for keys
// created by one transaction or not read from etcd, by node name, public IP, MAC, AttrVersion and
// subnet, so that the order never depends on the input's.
func older(a, b *subnet.Lease) int {
	return cmp.Or(
		cmp.Compare(a.CreateRevision, b.CreateRevision),
		cmp.Compare(a.Attrs.NodeName, b.Attrs.NodeName),
		a.Attrs.PublicIP.Compare(b.Attrs.PublicIP),
		bytes.Compare(a.Attrs.VtepMAC, b.Attrs.VtepMAC),
		cmp.Compare(a.Attrs.AttrVersion, b.Attrs.AttrVersion),
		a.Subnet.Compare(b.Subnet),
	)
}

// resolveSharedMACs keeps, of peers sharing a VTEP MAC at different public IPs, the one of the
// oldest lease and rejects the others: the FDB has one remote per MAC. Peers at the same public
// IP (one node, several subnets) share their MAC legitimately.
func resolveSharedMACs(infos []peerInfo, rejected []rejectedPeer) ([]peerInfo, []rejectedPeer) {
	byAge := slices.Clone(infos)
	slices.SortFunc(byAge, func(a, b peerInfo) int { return older(&a.lease, &b.lease) })
	keeper := make(map[string]peerInfo, len(byAge))
	kept := make([]peerInfo, 0, len(byAge))
	for _, p := range byAge {
		k, dup := keeper[string(p.peer.VtepMAC)]
		if dup && k.peer.PublicIP != p.peer.PublicIP {
			rejected = append(rejected, rejectedPeer{lease: p.lease, peer: p.peer, reason: backend.ReasonSharedMAC, detail: fmt.Sprintf(
				"VtepMAC %s is also used by %s (subnet %s) at %s, whose lease is older",
				p.peer.VtepMAC, k.peer.Name, k.peer.Subnet, k.peer.PublicIP)})
			continue
		}
		if !dup {
			keeper[string(p.peer.VtepMAC)] = p
		}
		kept = append(kept, p)
	}
	return kept, rejected
}

// logRejectionsLocked logs each rejection that is new or whose detail changed since the last call.
func (v *View) logRejectionsLocked(rejected []rejectedPeer) {
	now := make(map[rejectKey]string, len(rejected))
	for i := range rejected {
		r := &rejected[i]
		k := r.key()
		now[k] = r.detail
		if v.logged[k] != r.detail {
			v.log.Warn("peer rejected, not programming it", "subnet", prefixString(r.lease.Subnet), "peer", r.peer.Name,
				"public_ip", r.peer.PublicIP, "vtep_mac", r.peer.VtepMAC.String(), "created_revision", r.lease.CreateRevision,
				"reason", r.reason, "detail", r.detail)
		}
	}
	v.logged = now
}
