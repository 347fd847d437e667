package cni

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzParseConfig feeds arbitrary stdin to the config parser: it must never panic, every error must
// be a *types.Error with one of the spec's config codes, and every accepted config must validate.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"1.0.0","name":"weft","type":"weft"}`,
		`{"cniVersion":"1.1.0","name":"weft","type":"weft","bridge":"weft0","subnetFile":"/run/weft/subnet.env","dataDir":"/var/lib/weft/ipam","mtu":1450,"hairpinMode":true}`,
		`{"cniVersion":"1.1.0","name":"weft","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"cni.dev/attachments":[]}`,
		`{"cniVersion":"0.4.0","name":"weft","prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","interface":0,"address":"10.244.7.2/24","gateway":"10.244.7.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.7.1"}]}}`,
		`{"cniVersion":"1.0.0","name":"weft","dns":{"nameservers":["10.96.0.10"]},"ipMasq":false,"ipam":{},"args":{},"capabilities":{"portMappings":true},"runtimeConfig":{}}`,
		`{"cniVersion":"1.0.0","name":"weft","mtu":-1}`,
		`{"cniVersion":"1.0.0","name":"weft","bridge":"a/b"}`,
		`{"cniVersion":"1.0.0","name":"weft","prevResult":{"ips":[{"address":"x"}]}}`,
		`{"cniVersion":"1.0.0","name":"weft","unknown":null}`,
		`null`, `[]`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v is a %T, not a *types.Error", err, err)
			}
			if te.Code != types.ErrDecodingFailure && te.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("error code %d (%s), want 6 or 7", te.Code, te.Msg)
			}
			if te.Msg == "" {
				t.Fatal("error without a message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
	})
}
