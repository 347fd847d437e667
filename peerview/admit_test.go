package peerview

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/gossiptest"
	"github.com/weft-net/weft/subnet"
)

// TestAdmit: which announcements of a member the view lets into the gossip cluster.
func TestAdmit(t *testing.T) {
	at := netip.MustParseAddrPort("192.0.2.2:7946")
	elsewhere := netip.MustParseAddrPort("192.0.2.66:7946")
	withAddr := func(l subnet.Lease) subnet.Lease { l.Attrs.GossipAddr = at; return l }
	meta := func(key ed25519.PrivateKey, signedFor netip.AddrPort) []byte {
		m := testMeta("node-b", "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:02", 11)
		if key == nil {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		b, err := m.Sign(key, signedFor)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	genuine := meta(gossiptest.NodeKey("node-b"), at)
	tests := []struct {
		name   string
		leases []subnet.Lease
		addr   netip.AddrPort
		meta   []byte
		want   string
	}{
		{"before any lease set", nil, at, genuine, "no lease names the node"},
		{"signed by the lease's key", []subnet.Lease{withAddr(leaseB)}, at, genuine, ""},
		{"no lease names it", []subnet.Lease{leaseC}, at, genuine, "no lease names the node"},
		{"another address than the lease records", []subnet.Lease{withAddr(leaseB)}, elsewhere, meta(gossiptest.NodeKey("node-b"), elsewhere), "announced at 192.0.2.66:7946, the lease of 10.244.2.0/24 records 192.0.2.2:7946"},
		{"replayed from elsewhere", []subnet.Lease{leaseB}, elsewhere, genuine, "signed for 192.0.2.2:7946, announced at 192.0.2.66:7946"},
		{"signed by another key", []subnet.Lease{leaseB}, at, meta(gossiptest.NodeKey("mallory"), at), "signed by key"},
		{"unsigned, the lease has a key", []subnet.Lease{leaseB}, at, meta(nil, at), "unsigned"},
		{"unsigned, a keyless lease (older weft)", []subnet.Lease{keyless(withAddr(leaseB))}, at, meta(nil, at), ""},
		{"keyless lease, another address", []subnet.Lease{keyless(withAddr(leaseB))}, elsewhere, meta(nil, at), "records 192.0.2.2:7946"},
		{"garbage meta, the lease has a key", []subnet.Lease{leaseB}, at, []byte{2, 0}, "invalid gossip meta"},
		{"one of two leases of the node", []subnet.Lease{leaseC, lease("node-b", "10.244.4.0/24", "192.0.2.4", "02:00:00:00:00:04", 1), withAddr(leaseB)}, at, genuine, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestView(t, nil)
			if tt.leases != nil {
				v.SetLeases(tt.leases)
			}
			for range 2 { // the second answer comes from the verdict cache
				err := v.Admit("node-b", tt.addr, tt.meta)
				switch {
				case tt.want == "" && err != nil:
					t.Fatalf("refused: %v", err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Fatalf("Admit = %v, want a refusal saying %q", err, tt.want)
				}
			}
		})
	}
}

// TestAdmitNeverCachesAForgery: a forged meta that carries a genuine signature of other content is
// refused, although the genuine meta was admitted just before.
func TestAdmitNeverCachesAForgery(t *testing.T) {
	v := newTestView(t, nil)
	v.SetLeases([]subnet.Lease{leaseB})
	at := netip.MustParseAddrPort("192.0.2.2:7946")
	m := testMeta("node-b", "10.244.2.0/24", "192.0.2.2", "02:00:00:00:00:02", 11)
	genuine, err := m.Sign(gossiptest.NodeKey("node-b"), at)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Admit("node-b", at, genuine); err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), genuine...)
	forged[4] = 0x7f // a higher AttrVersion, the signature kept
	if err := v.Admit("node-b", at, forged); !errors.Is(err, gossip.ErrBadSignature) {
		t.Fatalf("forged meta: %v, want ErrBadSignature", err)
	}
}
