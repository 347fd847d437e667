package subnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParseConfig asserts that ParseConfig never panics and that whatever it accepts survives a
// marshal/parse round trip unchanged.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}`,
		`{"Network":"10.244.0.0/16","EnableNFTables":false,"Backend":{"Type":"vxlan"}}`,
		`{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.99.0.0","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}`,
		`{"network":"10.244.0.0/23","backend":{"type":"vxlan","mtu":1400,"directrouting":true}}`,
		`{"Network":"10.244.0.0/16","Backend":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		out, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if *again != *c {
			t.Fatalf("round trip changed %+v to %+v", c, again)
		}
	})
}

// FuzzParseLeaseAttrs asserts that ParseLeaseAttrs never panics and that accepted values round-trip.
func FuzzParseLeaseAttrs(f *testing.F) {
	for _, s := range []string{
		`{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`,
		`{"PublicIP":"198.51.100.2","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"46:11:2e:5e:cf:bf"}}`,
		`{"PublicIP":"198.51.100.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:77:65:66:74:01"},"WeftFormat":1,"WeftNode":"node-3","WeftGossipAddr":"198.51.100.3:7946","WeftAttrVersion":1764096000000000000,"WeftAcquiredAt":"2026-11-25T18:00:00Z"}`,
		`{"PublicIP":"198.51.100.4","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:77:65:66:74:02"},"WeftFormat":1,"WeftNode":"node-4","WeftNodeKey":"A7l4Rf3lXgB7n0l3Kk0x5ZyEoQ9f2b3w1cT0V7m2s8Q="}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseLeaseAttrs(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("marshal %+v: %v", a, err)
		}
		again, err := ParseLeaseAttrs(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !again.Equal(a) {
			t.Fatalf("round trip changed %+v to %+v", a, again)
		}
	})
}

// FuzzParseEnv asserts that ParseEnv never panics and that accepted files round-trip.
func FuzzParseEnv(f *testing.F) {
	f.Add([]byte(flannelEnv))
	f.Add([]byte(flannelEnv + "WEFT_READY=true\n"))
	f.Add([]byte("# c\n\nFLANNEL_NETWORK=10.0.0.0/8\nFLANNEL_SUBNET=10.1.0.1/16\nFLANNEL_MTU=8950\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnv(data)
		if err != nil {
			return
		}
		out := e.Marshal()
		again, err := ParseEnv(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if *again != *e || !bytes.Equal(again.Marshal(), out) {
			t.Fatalf("round trip changed %+v to %+v", e, again)
		}
	})
}

// FuzzReadLeaseIdentity asserts that the lenient decoder never panics, and that it agrees with
// ParseLeaseAttrs on every value the strict decoder accepts.
func FuzzReadLeaseIdentity(f *testing.F) {
	for _, s := range []string{
		`{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"16:5f:89:33:07:c4"}}`,
		`{"PublicIP":"198.51.100.3","WeftFormat":1,"WeftNode":"node-3"}`,
		`{"PublicIP":"not-an-ip","WeftNode":"n","BackendData":5}`,
		`{"PublicIP":7,"WeftNode":"n"}`,
		`x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ReadLeaseIdentity(data)
		if err != nil && !errors.Is(err, ErrInvalidLease) {
			t.Fatalf("error %v does not wrap ErrInvalidLease", err)
		}
		a, perr := ParseLeaseAttrs(data)
		if perr != nil {
			return
		}
		if err != nil || id.NodeName != a.NodeName || id.Addr() != a.PublicIP || id.VtepMAC == "" || id.Pending() {
			t.Fatalf("%s: lenient %+v (%v), strict %+v", data, id, err, a)
		}
	})
}

// FuzzParseConfigLenient asserts that the lenient parse accepts exactly what the strict one does
// once the unknown fields it reports are left out, and gives the same config.
func FuzzParseConfigLenient(f *testing.F) {
	for _, s := range []string{
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`,
		`{"Network":"10.244.0.0/16","FutureField":{"x":1},"Backend":{"Type":"vxlan","Fancy":true}}`,
		`{"network":"10.244.0.0/16","NETWORK":"10.245.0.0/16"}`,
		`{"Network":"10.244.0.0/16","Backend":null,"SubnetLen":"24"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, unknown, err := ParseConfigLenient(data)
		strict, serr := ParseConfig(data)
		switch {
		case err != nil && serr == nil:
			t.Fatalf("%s: lenient refuses (%v) what strict accepts", data, err)
		case err != nil:
			return
		case len(unknown) == 0 && (serr != nil || *strict != *c):
			t.Fatalf("%s: no unknown fields, but strict gives %+v, %v; lenient %+v", data, strict, serr, c)
		case len(unknown) > 0 && serr == nil:
			t.Fatalf("%s: strict accepts what lenient reports unknown fields %q in", data, unknown)
		case len(unknown) > 0 && !strings.Contains(serr.Error(), "unknown field"):
			t.Fatalf("%s: unknown fields %q, but strict says %v", data, unknown, serr)
		}
	})
}
