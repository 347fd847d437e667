package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/weft-net/weft/subnet"
)

func TestParseGossipPeers(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{`["198.18.0.12:7946","198.18.0.13:7946"]`, "[198.18.0.12:7946 198.18.0.13:7946]"},
		{`[]`, "[]"},
		{`null`, "[]"},
		{`["198.18.0.12"]`, "bad gossip peers file: not an ip:port"},
		{`["198.18.0.12:0"]`, `bad gossip peers file: [0]="198.18.0.12:0": want IPv4:port`},
		{`["[fc00::1]:7946"]`, `bad gossip peers file: [0]="[fc00::1]:7946": want IPv4:port`},
		{`[""]`, `bad gossip peers file: [0]="invalid AddrPort": want IPv4:port`},
		{`{"a":1}`, "bad gossip peers file: json: cannot unmarshal object into Go value of type []netip.AddrPort"},
		{``, "bad gossip peers file: unexpected end of JSON input"},
	} {
		addrs, err := parseGossipPeers([]byte(tt.in))
		got := fmt.Sprint(addrs)
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrBadGossipPeers) {
				t.Errorf("%s: error %v does not wrap ErrBadGossipPeers", tt.in, err)
			}
		}
		if got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzParseGossipPeers checks that the gossip peers file parser never panics, that errors wrap
// ErrBadGossipPeers and that what it accepts is usable and survives a write and a read.
func FuzzParseGossipPeers(f *testing.F) {
	f.Add([]byte(`["198.18.0.12:7946","198.18.0.13:7946"]`))
	f.Add([]byte(`["198.18.0.12:0"]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		addrs, err := parseGossipPeers(data)
		if err != nil {
			if !errors.Is(err, ErrBadGossipPeers) {
				t.Fatalf("error %v does not wrap ErrBadGossipPeers", err)
			}
			return
		}
		for _, a := range addrs {
			if !a.Addr().Is4() || a.Port() == 0 {
				t.Fatalf("accepted %s", a)
			}
		}
		out, err := json.Marshal(addrs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseGossipPeers(out)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(addrs) {
			t.Fatalf("%v written as %s read back as %v (%v)", addrs, out, again, err)
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
