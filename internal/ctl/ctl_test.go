package ctl

import (
	"errors"
	"flag"
	"net/netip"
	"strings"
	"testing"

	"github.com/weft-net/weft/daemon"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  error
		out  string
	}{
		{nil, ErrUsage, "Commands:"},
		{[]string{"help"}, nil, "Commands:"},
		{[]string{"frobnicate"}, ErrUsage, ""},
		{[]string{"leases"}, ErrUsage, ""},
		{[]string{"leases", "help"}, nil, "reclaim SUBNET"},
		{[]string{"leases", "frob"}, ErrUsage, ""},
		{[]string{"leases", "list", "-h"}, nil, ""},
		{[]string{"leases", "list", "extra"}, ErrUsage, ""},
		{[]string{"leases", "list", "-o", "xml"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-prefix", "weft/"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-endpoints", ""}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-endpoints", "ftp://x:1"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-cert", "c.pem"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-timeout", "0s"}, ErrUsage, ""},
		{[]string{"leases", "get", "-o", "json"}, ErrUsage, ""},
		{[]string{"config"}, ErrUsage, ""},
		{[]string{"config", "validate"}, ErrUsage, ""},
		{[]string{"config", "set", "-", "-etcd-prefix", "x"}, ErrUsage, ""},
		{[]string{"peers", "-health-addr", "%zz"}, ErrUsage, ""},
		{[]string{"doctor", "-o", "csv"}, ErrUsage, ""},
		{[]string{"etcd-role", "-role", "a b"}, ErrUsage, ""},
		{[]string{"etcd-role", "-user", ""}, ErrUsage, ""},
		{[]string{"version"}, nil, "weftctl dev\n"},
		{[]string{"version", "-o", "json"}, ErrUsage, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCtl(t, nil, nil, tc.args...)
			if !errors.Is(r.err, tc.err) || (tc.err == nil) != (r.err == nil) {
				t.Fatalf("err = %v, want %v", r.err, tc.err)
			}
			if !strings.Contains(r.stdout, tc.out) {
				t.Errorf("stdout lacks %q:\n%s", tc.out, r.stdout)
			}
		})
	}
}

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		o    string
	}{
		{[]string{"a", "-o", "json"}, []string{"a"}, "json"},
		{[]string{"-o", "json", "a"}, []string{"a"}, "json"},
		{[]string{"a", "--", "-o"}, []string{"a", "-o"}, "table"},
	} {
		env := &Env{Getenv: func(string) string { return "" }}
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		o := outputFlag(fs)
		names := make([]string, len(tc.pos))
		pos, err := parse(env, fs, tc.args, names...)
		if err != nil || strings.Join(pos, " ") != strings.Join(tc.pos, " ") || string(*o) != tc.o {
			t.Errorf("%q: positional %q, -o %s, err %v", tc.args, pos, *o, err)
		}
	}
}

// TestConnectionFlagsMatchWeftd gives weftd and weftctl the same WEFT_* environment and checks that
// both connect the same way.
func TestConnectionFlagsMatchWeftd(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{
			"WEFT_ETCD_ENDPOINTS": "https://10.0.0.1:2379, https://10.0.0.2:2379", "WEFT_ETCD_CERT": "/c.pem",
			"WEFT_ETCD_KEY": "/k.pem", "WEFT_ETCD_CA": "/ca.pem", "WEFT_ETCD_USERNAME": "weftd",
			"WEFT_ETCD_PASSWORD": "secret", "WEFT_ETCD_PREFIX": "/coreos.com/network",
		},
	} {
		getenv := func(k string) string { return vars[k] }
		d, err := daemon.ParseFlags([]string{"-node-name", "n1", "-gossip-insecure"}, getenv, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ef etcdFlags
		fs := newFlags(&Env{}, "test", "")
		ef.register(fs)
		if _, err := parse(&Env{Getenv: getenv}, fs, nil); err != nil {
			t.Fatal(err)
		}
		c, err := ef.config()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{strings.Join(d.Etcd.Endpoints, ","), d.Etcd.CertFile, d.Etcd.KeyFile, d.Etcd.CAFile, d.Etcd.Username, d.Etcd.Password, d.EtcdPrefix}
		got := []string{strings.Join(c.Endpoints, ","), c.CertFile, c.KeyFile, c.CAFile, c.Username, c.Password, ef.prefix}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("weftctl: %q\nweftd:   %q", got, want)
		}
	}
}

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
			if r.err != nil {
				t.Fatal(r.err)
			}
			golden(t, tc.name, r.stdout)
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
			if !errors.Is(err, ErrUsage) {
				t.Errorf("%q: error %v does not wrap ErrUsage", s, err)
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

func FuzzDecodePeers(f *testing.F) {
	f.Add(`{"node":"n1","peers":[{"name":"n2","subnet":"10.244.2.0/24","gossip":{"status":"gone"},"probe":{"reachable":false}}],"members":[{"name":"x","claim":"rejected"}]}`)
	f.Add(`{"peers":[{"subnet":"bad"}]}`)
	f.Add(`null`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		dp, err := decodePeers([]byte(body))
		if err != nil {
			return
		}
		var b strings.Builder
		if err := writePeers(&b, dp, true, fixtureNow); err != nil {
			t.Error(err)
		}
	})
}
