package admin

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
)

func TestEtcdRole(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"etcd-role", nil},
		{"etcd-role-flannel", []string{"-etcd-prefix", "/coreos.com/network", "-role", "weft-node", "-user", "weft$node"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCtl(t, nil, nil, append([]string{"etcd-role"}, tc.args...)...)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ctltest.Golden(t, tc.name, r.Stdout)
		})
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
}

func FuzzParseSubnetArg(f *testing.F) {
	for _, s := range []string{"10.244.7.0/24", "10.244.7.0-24", "/weft/network/subnets/10.244.7.0-24", "10.244.7.0-24&fc00::-64",
		"fc00::/64", "10.244.7.1/24", "", "-", "/", "1.2.3.4-", "::ffff:10.0.0.0/104"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseSubnetArg(s)
		if err != nil {
			if !errors.Is(err, cli.ErrUsage) {
				t.Errorf("%q: error %v does not wrap cli.ErrUsage", s, err)
			}
			return
		}
		if !p.Addr().Is4() || p != p.Masked() {
			t.Errorf("%q gave %s", s, p)
		}
		if _, err := netip.ParsePrefix(p.String()); err != nil {
			t.Error(err)
		}
	})
}
