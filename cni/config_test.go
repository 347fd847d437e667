package cni

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// renderConfig prints the fields a test can tell apart.
func renderConfig(c *Config) string {
	prev := "none"
	if c.PrevResult != nil {
		prev = fmt.Sprintf("%d ips", len(c.PrevResult.IPs))
	}
	va := "absent"
	if c.ValidAttachments != nil {
		va = fmt.Sprint(c.ValidAttachments)
	}
	return fmt.Sprintf("version=%s name=%s bridge=%s subnetFile=%s dataDir=%s mtu=%d hairpin=%t dns=%v prev=%s valid=%s",
		c.CNIVersion, c.Name, c.Bridge, c.SubnetFile, c.DataDir, c.MTU, c.HairpinMode, c.DNS.Nameservers, prev, va)
}

func TestParseConfig(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"weft","type":"weft"`
	tests := []struct {
		name, in string
		want     string // rendered config, or "error <code>: <substring of the message>"
	}{
		{"minimal", `{` + base + `}`,
			"version=1.0.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=none valid=absent"},
		{"own fields", `{` + base + `,"bridge":"br-pods","subnetFile":"/tmp/s.env","dataDir":"/tmp/ipam","mtu":1400,"hairpinMode":false}`,
			"version=1.0.0 name=weft bridge=br-pods subnetFile=/tmp/s.env dataDir=/tmp/ipam mtu=1400 hairpin=false dns=[] prev=none valid=absent"},
		{"well-known keys", `{` + base + `,"cniVersions":["1.0.0","1.1.0"],"args":{"cni":{"x":1}},"ipMasq":true,"ipam":{},` +
			`"dns":{"nameservers":["10.96.0.10"]},"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[]},"cni.dev/future":7}`,
			"version=1.0.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[10.96.0.10] prev=none valid=absent"},
		{"null leaves the default", `{` + base + `,"bridge":null}`,
			"version=1.0.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=none valid=absent"},
		{"prevResult 1.0.0", `{` + base + `,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"interface":0,"address":"10.244.7.2/24"}]}}`,
			"version=1.0.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=1 ips valid=absent"},
		{"prevResult 0.4.0 without version", `{"cniVersion":"0.4.0","name":"weft","prevResult":{"ips":[{"version":"4","address":"10.244.7.2/24"}]}}`,
			"version=0.4.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=1 ips valid=absent"},
		{"valid attachments", `{"cniVersion":"1.1.0","name":"weft","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`,
			"version=1.1.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=none valid=[{a eth0}]"},
		{"empty valid attachments", `{"cniVersion":"1.1.0","name":"weft","cni.dev/valid-attachments":[]}`,
			"version=1.1.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=none valid=[]"},
		{"old attachments key", `{"cniVersion":"1.1.0","name":"weft","cni.dev/attachments":[{"containerID":"b","ifname":"net1"}]}`,
			"version=1.1.0 name=weft bridge=weft0 subnetFile=/run/weft/subnet.env dataDir=/var/lib/weft/ipam mtu=0 hairpin=true dns=[] prev=none valid=[{b net1}]"},

		{"not json", `{`, "error 6: not a JSON object"},
		{"array", `[]`, "error 6: not a JSON object"},
		{"unknown field", `{` + base + `,"brdige":"x"}`, `error 7: field "brdige": unknown field`},
		{"bridge type", `{` + base + `,"bridge":5}`, `error 7: field "bridge": must be a JSON string, not number`},
		{"bridge too long", `{` + base + `,"bridge":"abcdefghijklmnop"}`, `error 7: field "bridge": "abcdefghijklmnop": is longer than 15 bytes`},
		{"bridge slash", `{` + base + `,"bridge":"a/b"}`, `error 7: field "bridge": "a/b": contains`},
		{"bridge empty", `{` + base + `,"bridge":""}`, `error 7: field "bridge": "": is empty`},
		{"mtu fraction", `{` + base + `,"mtu":1400.5}`, `error 7: field "mtu": must be a JSON integer, not number 1400.5`},
		{"mtu small", `{` + base + `,"mtu":100}`, `error 7: field "mtu": 100: must be between 576 and 65485`},
		{"mtu large", `{` + base + `,"mtu":65536}`, `error 7: field "mtu": 65536: must be between 576 and 65485`},
		{"hairpin string", `{` + base + `,"hairpinMode":"yes"}`, `error 7: field "hairpinMode": must be a JSON boolean, not string`},
		{"relative subnet file", `{` + base + `,"subnetFile":"run/subnet.env"}`, `error 7: field "subnetFile": "run/subnet.env": must be a clean absolute path`},
		{"unclean data dir", `{` + base + `,"dataDir":"/var/lib/../x"}`, `error 7: field "dataDir": "/var/lib/../x": must be a clean absolute path`},
		{"no name", `{"cniVersion":"1.0.0"}`, `error 7: field "name"`},
		{"bad name", `{"cniVersion":"1.0.0","name":"../etc"}`, `error 7: field "name": "../etc"`},
		{"no version", `{"name":"weft"}`, `error 7: field "cniVersion": is missing`},
		{"ipMasq type", `{` + base + `,"ipMasq":"true"}`, `error 7: field "ipMasq": must be a JSON boolean`},
		{"capabilities type", `{` + base + `,"capabilities":{"portMappings":"yes"}}`, `error 7: field "capabilities": must be a JSON object`},
		{"prevResult type", `{` + base + `,"prevResult":[1]}`, `error 7: field "prevResult": must be a JSON object`},
		{"prevResult bad", `{` + base + `,"prevResult":{"ips":[{"address":"nonsense"}]}}`, `error 7: field "prevResult"`},
		{"attachments type", `{"cniVersion":"1.1.0","name":"weft","cni.dev/valid-attachments":{"a":1}}`, `error 7: field "cni.dev/valid-attachments": must be a JSON array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.in))
			var got string
			if err != nil {
				var te *types.Error
				if !errors.As(err, &te) {
					t.Fatalf("error %v is a %T, not a *types.Error", err, err)
				}
				got = fmt.Sprintf("error %d: %s", te.Code, te.Error())
			} else {
				got = renderConfig(c)
			}
			if strings.HasPrefix(tt.want, "error ") {
				code, msg, _ := strings.Cut(tt.want, ": ")
				if !strings.HasPrefix(got, code+": ") || !strings.Contains(got, msg) {
					t.Errorf("got  %s\nwant %s", got, tt.want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestHostVethName(t *testing.T) {
	a := HostVethName("0123456789abcdef", "eth0")
	if !isHostVethName(a) || len(a) != 13 {
		t.Errorf("HostVethName = %q: not wf + 11 hex digits", a)
	}
	if b := HostVethName("0123456789abcdef", "eth0"); a != b {
		t.Errorf("not deterministic: %q, %q", a, b)
	}
	for _, other := range []string{HostVethName("0123456789abcdef", "net1"), HostVethName("0123456789abcdee", "eth0")} {
		if other == a {
			t.Errorf("different attachments share %q", a)
		}
	}
	for _, name := range []string{"wf0123456789", "wf0123456789ab", "xx0123456789a", "wf0123456789A", "veth01234567a"} {
		if isHostVethName(name) {
			t.Errorf("isHostVethName(%q) = true", name)
		}
	}
}
