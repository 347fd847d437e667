package daemon

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	weftetcd "github.com/weft-net/weft/subnet/etcd"

	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"WEFT_ETCD_ENDPOINTS": "http://10.0.0.1:2379,http://10.0.0.2:2379", "WEFT_IP_MASQ": "false"}
	c, err := ParseFlags([]string{"-node-name", "n1", "-public-ip", "192.0.2.7", "-lease-ttl", "1h", "-gossip-key-file", "/etc/weft/gossip.key"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Etcd.Endpoints) != 2 || c.IPMasq || c.NodeName != "n1" || c.PublicIP.String() != "192.0.2.7" || c.LeaseTTL != time.Hour {
		t.Errorf("parsed %+v", c)
	}
	if c.ForwardPlacement != ForwardFirst {
		t.Errorf("-forward-placement default %q, want %q", c.ForwardPlacement, ForwardFirst)
	}
	c, err = ParseFlags([]string{"-node-name", "n1", "-gossip-insecure"}, func(k string) string { return map[string]string{"WEFT_FORWARD_PLACEMENT": "append"}[k] }, io.Discard)
	if err != nil || c.ForwardPlacement != ForwardAppend {
		t.Errorf("WEFT_FORWARD_PLACEMENT=append: placement %q, err %v", c.ForwardPlacement, err)
	}
	if c.EtcdPrefix != weftetcd.DefaultPrefix || c.SubnetFile != subnet.DefaultEnvFile || c.StateDir != DefaultStateDir || c.HealthAddr != nodeapi.DefaultHealthAddr {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseFlagsFlannelCompat(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want bool
	}{
		{nil, "", false},
		{[]string{"-etcd-prefix", weftetcd.FlannelPrefix}, "", true},
		{[]string{"-etcd-prefix", weftetcd.FlannelPrefix, "-flannel-compat=false"}, "", false},
		{[]string{"-etcd-prefix", "/flannel/custom", "-flannel-compat"}, "", true},
		{[]string{"-etcd-prefix", "/flannel/custom"}, "true", true},
	} {
		env := map[string]string{"WEFT_FLANNEL_COMPAT": tc.env}
		c, err := ParseFlags(append([]string{"-node-name", "n1", "-gossip-insecure"}, tc.args...), func(k string) string { return env[k] }, io.Discard)
		if err != nil || c.FlannelCompat != tc.want {
			t.Errorf("%q WEFT_FLANNEL_COMPAT=%q: FlannelCompat %v, want %v (%v)", tc.args, tc.env, c != nil && c.FlannelCompat, tc.want, err)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-nope"}, nil, "flag provided but not defined: -nope"},
		{[]string{"-node-name", "n", "extra"}, nil, `unexpected argument "extra"`},
		{[]string{"-node-name", "n", "-public-ip", "fe80::1"}, nil, `-public-ip="fe80::1"`},
		{[]string{"-node-name", "n", "-gossip-bind", "1.2.3.4"}, nil, `-gossip-bind="1.2.3.4"`},
		{[]string{"-node-name", "n", "-log-level", "loud"}, nil, `-log-level="loud"`},
		{[]string{"-node-name", "n", "-etcd-prefix", "weft"}, nil, `-etcd-prefix="weft"`},
		{[]string{"-node-name", "n", "-etcd-prefix", "/weft/"}, nil, `-etcd-prefix="/weft/"`},
		{[]string{"-node-name", "n", "-etcd-endpoints", " , "}, nil, "-etcd-endpoints"},
		{[]string{"-node-name", "n", "-etcd-cert", "/c.pem"}, nil, `-etcd-cert="/c.pem", -etcd-key="": a client certificate and its key go together`},
		{[]string{"-node-name", "n", "-etcd-ca", "/ca.pem"}, nil, "-etcd-ca given but endpoint http://127.0.0.1:2379 is plaintext"},
		{[]string{"-node-name", "a b"}, nil, `-node-name="a b"`},
		{[]string{"-node-name", "n", "-lease-ttl", "1s"}, nil, `-lease-ttl="1s"`},
		{[]string{"-node-name", "n", "-lease-ttl", "10.5s"}, nil, `-lease-ttl="10.5s"`},
		{[]string{"-node-name", "n", "-mtu", "100"}, nil, `-mtu="100"`},
		{[]string{"-node-name", "n", "-tx-checksum-offload", "maybe"}, nil, `-tx-checksum-offload="maybe"`},
		{[]string{"-node-name", "n", "-log-format", "xml"}, nil, `-log-format="xml"`},
		{[]string{"-node-name", "n", "-forward-placement", "last"}, nil, `-forward-placement="last": want first or append`},
		{[]string{"-node-name", "n"}, map[string]string{"WEFT_FORWARD_PLACEMENT": "top"}, `-forward-placement="top"`},
		{[]string{"-node-name", "n"}, map[string]string{"WEFT_LEASE_TTL": "forever"}, "WEFT_LEASE_TTL"},
		{[]string{"-node-name", "n"}, nil, `-gossip-key-file="": required: gossip is encrypted unless -gossip-insecure is given`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := ParseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want ErrUsage naming %q", err, tt.want)
			}
		})
	}
}
