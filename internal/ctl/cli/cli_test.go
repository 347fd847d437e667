package cli

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/weft-net/weft/daemon"
)

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
		o := OutputFlag(fs)
		names := make([]string, len(tc.pos))
		pos, err := Parse(env, fs, tc.args, names...)
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
		{"WEFT_ETCD_PREFIX": "/coreos.com/network", "WEFT_FLANNEL_COMPAT": "false"},
		{"WEFT_ETCD_PREFIX": "/flannel/custom", "WEFT_FLANNEL_COMPAT": "true"},
	} {
		getenv := func(k string) string { return vars[k] }
		d, err := daemon.ParseFlags([]string{"-node-name", "n1", "-gossip-insecure"}, getenv, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ef EtcdFlags
		fs := NewFlags(&Env{}, "test", "")
		ef.Register(fs)
		if _, err := Parse(&Env{Getenv: getenv}, fs, nil); err != nil {
			t.Fatal(err)
		}
		c, err := ef.Config()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{strings.Join(d.Etcd.Endpoints, ","), d.Etcd.CertFile, d.Etcd.KeyFile, d.Etcd.CAFile, d.Etcd.Username, d.Etcd.Password, d.EtcdPrefix, fmt.Sprint(d.FlannelCompat)}
		got := []string{strings.Join(c.Endpoints, ","), c.CertFile, c.KeyFile, c.CAFile, c.Username, c.Password, ef.Prefix, fmt.Sprint(ef.FlannelCompat())}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("weftctl: %q\nweftd:   %q", got, want)
		}
	}
}
