package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weft-net/weft/subnet"
)

const savedSet = `{"kind":"weft-lease-set/v1","leases":[` +
	`{"key":"10.244.2.0-24","value":{"PublicIP":"198.18.0.12","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:02"},"WeftFormat":1,"WeftNode":"node2","WeftGossipAddr":"198.18.0.12:7946"},"createRevision":7},` +
	`{"key":"10.244.3.0-24","value":{"PublicIP":"not an address","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:03"}}},` +
	`{"key":"10.244.4.0-24","value":{"PublicIP":"198.18.0.14","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:04"}}}]}`

func TestParseLeaseSet(t *testing.T) {
	render := func(ls []subnet.Lease) string {
		var out []string
		for _, l := range ls {
			out = append(out, fmt.Sprintf("%s %s %s rev=%d", l.Subnet, l.Attrs.NodeName, l.Attrs.PublicIP, l.CreateRevision))
		}
		return strings.Join(out, "; ")
	}
	for _, tt := range []struct {
		name, in, want, err string
	}{
		{"one bad lease is left out alone", savedSet, "10.244.2.0/24 node2 198.18.0.12 rev=7; 10.244.4.0/24  198.18.0.14 rev=0", `leases[1] ("10.244.3.0-24"): invalid lease: PublicIP="not an address"`},
		{"empty", `{"kind":"weft-lease-set/v1","leases":[]}`, "", ""},
		{"bad key", `{"kind":"weft-lease-set/v1","leases":[{"key":"x","value":{}}]}`, "", `leases[0] ("x")`},
		{"another file", `{"kind":"weft-lab/v1"}`, "", `kind "weft-lab/v1", want "weft-lease-set/v1"`},
		{"the old gossip peers file", `["198.18.0.12:7946"]`, "", "cannot unmarshal array"},
		{"not JSON", ``, "", "unexpected end of JSON input"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leases, err := parseLeaseSet([]byte(tt.in))
			if got := render(leases); got != tt.want {
				t.Errorf("leases %q, want %q", got, tt.want)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.err != "" && (!errors.Is(err, ErrBadLeaseSet) || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want ErrBadLeaseSet saying %q", err, tt.err)
			}
		})
	}
}

// FuzzParseLeaseSet checks that the lease set parser never panics, that errors wrap
// ErrBadLeaseSet, and that what it accepts survives a write and a read.
func FuzzParseLeaseSet(f *testing.F) {
	f.Add([]byte(savedSet))
	f.Add([]byte(`{"kind":"weft-lease-set/v1","leases":[{"key":"10.244.2.0-24&fd00::-64","value":{}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		leases, err := parseLeaseSet(data)
		if err != nil && !errors.Is(err, ErrBadLeaseSet) {
			t.Fatalf("error %v does not wrap ErrBadLeaseSet", err)
		}
		out, err := encodeLeaseSet(leases)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseLeaseSet(out)
		if err != nil || len(again) != len(leases) {
			t.Fatalf("%d leases written as %s read back as %d (%v)", len(leases), out, len(again), err)
		}
		for i := range again {
			j := slices.IndexFunc(leases, func(l subnet.Lease) bool { return l.Subnet == again[i].Subnet && l.Attrs.Equal(&again[i].Attrs) })
			if j < 0 {
				t.Fatalf("lease %+v read back, not among those written", again[i])
			}
		}
	})
}

func TestFitting(t *testing.T) {
	cfg, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","SubnetLen":24}`))
	if err != nil {
		t.Fatal(err)
	}
	var leases []subnet.Lease
	for _, s := range []string{"10.244.1.0/24", "10.244.2.128/25", "10.244.0.0/22", "10.245.0.0/24", "10.244.3.0/24", "10.0.0.0/8"} {
		leases = append(leases, subnet.Lease{Subnet: netip.MustParsePrefix(s)})
	}
	fit, misfit := fitting(cfg, leases)
	render := func(ls []subnet.Lease) string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Subnet.String())
		}
		return strings.Join(out, " ")
	}
	if got, want := render(fit), "10.244.1.0/24 10.244.3.0/24"; got != want {
		t.Errorf("fit: %s, want %s", got, want)
	}
	if got, want := render(misfit), "10.244.2.128/25 10.244.0.0/22 10.245.0.0/24 10.0.0.0/8"; got != want {
		t.Errorf("misfit: %s, want %s", got, want)
	}
}
