package vxlan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weft-net/weft/backend"
)

// offlineBackend is a Backend for the pure peer logic: node 192.0.2.1 on 192.0.2.0/24 with subnet
// 10.244.1.0/24, no kernel.
func offlineBackend(direct bool) *Backend {
	b := &Backend{
		cfg:      Config{Subnet: netip.MustParsePrefix("10.244.1.0/24"), DirectRouting: direct},
		underlay: Underlay{IP: netip.MustParseAddr("192.0.2.1"), Net: netip.MustParsePrefix("192.0.2.0/24")},
	}
	copy(b.mac[:], []byte{0x02, 0xee, 0, 0, 0, 1})
	return b
}

// renderDesired renders a desired state as sorted text.
func renderDesired(d *desired) string {
	var lines []string
	for ip, s := range d.neigh {
		lines = append(lines, fmt.Sprintf("neigh %s %s (%s)", ip, s.mac, s.peer.name))
	}
	for m, s := range d.fdb {
		lines = append(lines, fmt.Sprintf("fdb %s %s (%s)", m, s.dst, s.peer.name))
	}
	for dst, s := range d.routes {
		lines = append(lines, fmt.Sprintf("route %s via %s direct %t (%s)", dst, s.gw, s.direct, s.peer.name))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestBuildDesiredRejectsInvalidPeers(t *testing.T) {
	good := peer("good", "10.244.2.0/24", "198.51.100.2", "02:aa:00:00:00:02")
	tests := []struct {
		name    string
		peer    backend.Peer
		problem string
		reason  backend.Reason
	}{
		{"missing subnet", backend.Peer{Name: "x", PublicIP: netip.MustParseAddr("198.51.100.3"), VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}}, "Subnet is missing", backend.ReasonInvalid},
		{"IPv6 subnet", peer("x", "fd00::/64", "198.51.100.3", "02:00:00:00:00:03"), "not IPv4", backend.ReasonInvalid},
		{"host bits", peer("x", "10.244.3.1/24", "198.51.100.3", "02:00:00:00:00:03"), "host bits", backend.ReasonInvalid},
		{"inside own subnet", peer("x", "10.244.1.128/25", "198.51.100.3", "02:00:00:00:00:03"), "overlaps this node's subnet", backend.ReasonSubnet},
		{"containing own subnet", peer("x", "10.244.0.0/16", "198.51.100.3", "02:00:00:00:00:03"), "overlaps this node's subnet", backend.ReasonSubnet},
		{"missing public IP", backend.Peer{Name: "x", Subnet: netip.MustParsePrefix("10.244.3.0/24"), VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}}, "PublicIP is missing", backend.ReasonInvalid},
		{"unspecified public IP", peer("x", "10.244.3.0/24", "0.0.0.0", "02:00:00:00:00:03"), "unspecified", backend.ReasonInvalid},
		{"multicast public IP", peer("x", "10.244.3.0/24", "224.0.0.1", "02:00:00:00:00:03"), "multicast", backend.ReasonInvalid},
		{"IPv6 public IP", peer("x", "10.244.3.0/24", "2001:db8::3", "02:00:00:00:00:03"), "not IPv4", backend.ReasonInvalid},
		{"own public IP", peer("x", "10.244.3.0/24", "192.0.2.1", "02:00:00:00:00:03"), "own address", backend.ReasonLocalAddr},
		{"missing MAC", backend.Peer{Name: "x", Subnet: netip.MustParsePrefix("10.244.3.0/24"), PublicIP: netip.MustParseAddr("198.51.100.3")}, "not a 6-byte MAC", backend.ReasonInvalid},
		{"zero MAC", peer("x", "10.244.3.0/24", "198.51.100.3", "00:00:00:00:00:00"), "zero MAC", backend.ReasonInvalid},
		{"broadcast MAC", peer("x", "10.244.3.0/24", "198.51.100.3", "ff:ff:ff:ff:ff:ff"), "multicast or broadcast", backend.ReasonInvalid},
		{"multicast MAC", peer("x", "10.244.3.0/24", "198.51.100.3", "01:00:5e:00:00:01"), "multicast or broadcast", backend.ReasonInvalid},
		{"own MAC", peer("x", "10.244.3.0/24", "198.51.100.3", "02:ee:00:00:00:01"), "this node's own", backend.ReasonOwnMAC},
		{"long MAC", peer("x", "10.244.3.0/24", "198.51.100.3", "02:00:00:00:00:00:00:03"), "not a 6-byte MAC", backend.ReasonInvalid},
		{"loopback public IP", peer("x", "10.244.3.0/24", "127.0.0.1", "02:00:00:00:00:03"), "loopback", backend.ReasonInvalid},
		{"link-local public IP", peer("x", "10.244.3.0/24", "169.254.1.1", "02:00:00:00:00:03"), "link-local", backend.ReasonInvalid},
		{"this-network public IP", peer("x", "10.244.3.0/24", "0.1.2.3", "02:00:00:00:00:03"), "0.0.0.0/8", backend.ReasonInvalid},
		{"reserved public IP", peer("x", "10.244.3.0/24", "240.0.0.1", "02:00:00:00:00:03"), "240.0.0.0/4", backend.ReasonInvalid},
		{"limited broadcast public IP", peer("x", "10.244.3.0/24", "255.255.255.255", "02:00:00:00:00:03"), "limited broadcast", backend.ReasonInvalid},
		{"underlay broadcast public IP", peer("x", "10.244.3.0/24", "192.0.2.255", "02:00:00:00:00:03"), "broadcast address of the underlay prefix 192.0.2.0/24", backend.ReasonPublicIP},
		{"underlay network public IP", peer("x", "10.244.3.0/24", "192.0.2.0", "02:00:00:00:00:03"), "network address of the underlay prefix", backend.ReasonPublicIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := offlineBackend(false)
			d, errs := b.buildDesired([]backend.Peer{good, tt.peer})
			if len(errs) != 1 || !errors.Is(errs[0], backend.ErrInvalidPeer) || !strings.Contains(errs[0].Error(), tt.problem) {
				t.Fatalf("errors %v, want one ErrInvalidPeer mentioning %q", errs, tt.problem)
			}
			if pe := (*backend.PeerError)(nil); !errors.As(errs[0], &pe) || pe.Peer != "x" || pe.Reason != tt.reason {
				t.Fatalf("error %q does not name the peer and reason %q", errs[0], tt.reason)
			}
			want := "fdb 02:aa:00:00:00:02 198.51.100.2 (good)\nneigh 10.244.2.0 02:aa:00:00:00:02 (good)\n" +
				"route 10.244.2.0/24 via 10.244.2.0 direct false (good)"
			if got := renderDesired(d); got != want {
				t.Fatalf("desired:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestBuildDesiredConflictsAreOrderIndependent(t *testing.T) {
	peers := []backend.Peer{
		peer("wide", "10.245.0.0/16", "198.51.100.10", "02:aa:00:00:00:10"),
		peer("inner-1", "10.245.1.0/24", "198.51.100.11", "02:aa:00:00:00:11"),
		peer("inner-2", "10.245.2.0/24", "198.51.100.12", "02:aa:00:00:00:12"),
		peer("dup-1", "10.244.7.0/24", "198.51.100.13", "02:aa:00:00:00:13"),
		peer("dup-2", "10.244.7.0/24", "198.51.100.14", "02:aa:00:00:00:14"),
		peer("mac-1", "10.244.8.0/24", "198.51.100.15", "02:aa:00:00:00:15"),
		peer("mac-2", "10.244.9.0/24", "198.51.100.16", "02:aa:00:00:00:15"),
		peer("ok-1", "10.244.10.0/24", "198.51.100.17", "02:aa:00:00:00:17"),
		peer("direct", "10.244.11.0/24", "192.0.2.18", "02:aa:00:00:00:18"),
		// Two subnets behind one node share its MAC and public IP: not a conflict.
		peer("multi-1", "10.244.12.0/24", "198.51.100.19", "02:aa:00:00:00:19"),
		peer("multi-2", "10.244.13.0/24", "198.51.100.19", "02:aa:00:00:00:19"),
	}
	want := `fdb 02:aa:00:00:00:17 198.51.100.17 (ok-1)
fdb 02:aa:00:00:00:19 198.51.100.19 (multi-2)
neigh 10.244.10.0 02:aa:00:00:00:17 (ok-1)
neigh 10.244.12.0 02:aa:00:00:00:19 (multi-1)
neigh 10.244.13.0 02:aa:00:00:00:19 (multi-2)
route 10.244.10.0/24 via 10.244.10.0 direct false (ok-1)
route 10.244.11.0/24 via 192.0.2.18 direct true (direct)
route 10.244.12.0/24 via 10.244.12.0 direct false (multi-1)
route 10.244.13.0/24 via 10.244.13.0 direct false (multi-2)`
	rejected := []string{"wide", "inner-1", "inner-2", "dup-1", "dup-2", "mac-1", "mac-2"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		shuffled := slices.Clone(peers)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		d, errs := offlineBackend(true).buildDesired(shuffled)
		if got := renderDesired(d); got != want {
			t.Fatalf("round %d: desired:\n%s\nwant:\n%s", round, got, want)
		}
		var names []string
		for _, err := range errs {
			var pe *backend.PeerError
			if !errors.Is(err, backend.ErrInvalidPeer) || !errors.As(err, &pe) {
				t.Fatalf("error %v is not an invalid peer's PeerError", err)
			}
			names = append(names, pe.Peer)
		}
		slices.Sort(names)
		wantNames := slices.Sorted(slices.Values(rejected))
		if !slices.Equal(names, wantNames) {
			t.Fatalf("round %d: rejected %v, want %v", round, names, wantNames)
		}
	}
}

// TestDesiredWithout: dropping peers removes their entries only; an FDB entry that another subnet
// of the same node still needs stays, attributed to that subnet.
func TestDesiredWithout(t *testing.T) {
	d, errs := offlineBackend(true).buildDesired([]backend.Peer{
		peer("a", "10.244.2.0/24", "198.51.100.2", "02:aa:00:00:00:02"),
		peer("multi-3", "10.244.3.0/24", "198.51.100.3", "02:aa:00:00:00:03"),
		peer("multi-4", "10.244.4.0/24", "198.51.100.3", "02:aa:00:00:00:03"),
		peer("direct", "10.244.5.0/24", "192.0.2.5", "02:aa:00:00:00:05"),
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		drop string
		want string
	}{
		{"10.244.2.0/24 10.244.5.0/24", `fdb 02:aa:00:00:00:03 198.51.100.3 (multi-4)
neigh 10.244.3.0 02:aa:00:00:00:03 (multi-3)
neigh 10.244.4.0 02:aa:00:00:00:03 (multi-4)
route 10.244.3.0/24 via 10.244.3.0 direct false (multi-3)
route 10.244.4.0/24 via 10.244.4.0 direct false (multi-4)`},
		{"10.244.3.0/24 10.244.4.0/24", `fdb 02:aa:00:00:00:02 198.51.100.2 (a)
neigh 10.244.2.0 02:aa:00:00:00:02 (a)
route 10.244.2.0/24 via 10.244.2.0 direct false (a)
route 10.244.5.0/24 via 192.0.2.5 direct true (direct)`},
		{"10.244.4.0/24", `fdb 02:aa:00:00:00:02 198.51.100.2 (a)
fdb 02:aa:00:00:00:03 198.51.100.3 (multi-3)
neigh 10.244.2.0 02:aa:00:00:00:02 (a)
neigh 10.244.3.0 02:aa:00:00:00:03 (multi-3)
route 10.244.2.0/24 via 10.244.2.0 direct false (a)
route 10.244.3.0/24 via 10.244.3.0 direct false (multi-3)
route 10.244.5.0/24 via 192.0.2.5 direct true (direct)`},
	}
	for _, tt := range tests {
		drop := map[netip.Prefix]bool{}
		for _, p := range strings.Fields(tt.drop) {
			drop[netip.MustParsePrefix(p)] = true
		}
		if got := renderDesired(d.without(drop)); got != tt.want {
			t.Errorf("drop %s:\n%s\nwant:\n%s", tt.drop, got, tt.want)
		}
	}
}
