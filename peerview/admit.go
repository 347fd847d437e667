package peerview

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/subnet"
)

// maxVerdicts bounds the remembered signature checks; the cache starts over when it is full.
const maxVerdicts = 4096

// ErrNotLeased is why a member that no lease names is refused.
var ErrNotLeased = errors.New("no lease names the node")

// Admit is the gossip member's Admitter: a member (other than this node) is let in only when etcd's
// lease set, as the view last got it, knows it. A lease must name it; when that lease records a
// gossip address the member must announce that one; when it carries the node's key the member's
// meta must be signed with it for the address announced. A node whose lease carries no key (an
// older weft) is let in on name and address alone, its claims never overriding etcd. Before the
// first lease set every member is refused; the gossip member joins the addresses in the leases as
// they arrive, which brings a refused member back.
//
// Admit runs under memberlist's lock for every alive message: it reads only the view's memory and
// remembers signature checks, so a relayed claim costs a hash and a map lookup.
func (v *View) Admit(name string, addr netip.AddrPort, meta []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	leases := v.owners[name]
	if len(leases) == 0 {
		return ErrNotLeased
	}
	var first error
	for _, l := range leases {
		err := v.admitBy(&l, addr, meta)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// admitBy checks an announcement against one of the node's leases.
func (v *View) admitBy(l *subnet.Lease, addr netip.AddrPort, raw []byte) error {
	if a := l.Attrs.GossipAddr; a.IsValid() && a != addr {
		return fmt.Errorf("announced at %s, the lease of %s records %s", addr, l.Subnet, a)
	}
	if l.Attrs.NodeKey == nil {
		return nil
	}
	return v.verified(l.Attrs.NodeKey, addr, raw)
}

// verified checks that the raw meta is signed by key for addr. Verdicts are remembered by a hash
// of everything the check depends on, so a relayed claim is neither parsed nor verified again.
func (v *View) verified(key ed25519.PublicKey, addr netip.AddrPort, raw []byte) error {
	h := sha256.New()
	h.Write(key)
	a := addr.Addr().As16()
	h.Write(a[:])
	h.Write(binary.BigEndian.AppendUint16(nil, addr.Port()))
	h.Write(raw)
	id := [32]byte(h.Sum(nil))
	if err, ok := v.verdicts[id]; ok {
		return err
	}
	meta, err := gossip.ParseMeta(raw)
	if err == nil {
		err = meta.Verify(key)
	}
	if err == nil && meta.GossipAddr != addr {
		err = fmt.Errorf("%w: signed for %s, announced at %s (a replay)", gossip.ErrBadSignature, meta.GossipAddr, addr)
	}
	if len(v.verdicts) >= maxVerdicts {
		clear(v.verdicts)
	}
	v.verdicts[id] = err
	return err
}

// verifiedClaim is verified for a member's parsed meta: a signed meta is checked by its bytes,
// which it keeps, an unsigned one refused at once.
func (v *View) verifiedClaim(key ed25519.PublicKey, addr netip.AddrPort, m *gossip.Meta) error {
	if m.Signature == nil {
		return m.Verify(key)
	}
	return v.verified(key, addr, append(slices.Clip(m.Signed()), m.Signature...))
}

// owns reports whether a lease names node.
func (v *View) owns(node string) bool { return len(v.owners[node]) > 0 }
