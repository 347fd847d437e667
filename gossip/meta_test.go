package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func testMeta(name, sn, ip, mac string, attrVersion int64) Meta {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return Meta{
		NodeName: name, Subnet: netip.MustParsePrefix(sn), PublicIP: netip.MustParseAddr(ip),
		VtepMAC: hw, VNI: 1, AttrVersion: attrVersion,
	}
}

// testKey is a fixed node key, so that signed encodings are reproducible.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var testAddr = netip.MustParseAddrPort("192.0.2.10:7946")

// The wire format is pinned: a change here breaks mixed-version clusters.
func TestMetaEncoding(t *testing.T) {
	m := testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:42:ac:11:00:02", 0x0102030405060708)
	m.VNI = 0x0a0b0c
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	const want = "01" + "0a0b0c" + "0102030405060708" + "c000020a" + "0242ac110002" + "0af40700" + "18" + "06" +
		"6e6f64652d61"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding:\n got %s\nwant %s", got, want)
	}
	signed, err := m.Sign(testKey, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	id := NodeKeyID(testKey.Public().(ed25519.PublicKey))
	wantSigned := "02" + want[2:] + "c000020a" + "1f0a" + hex.EncodeToString(id[:])
	if got := hex.EncodeToString(signed[:len(signed)-ed25519.SignatureSize]); got != wantSigned {
		t.Fatalf("signed encoding:\n got %s\nwant %s", got, wantSigned)
	}
	if !ed25519.Verify(testKey.Public().(ed25519.PublicKey), append([]byte("weft gossip meta\x00"), signed[:len(signed)-64]...), signed[len(signed)-64:]) {
		t.Fatal("the last 64 bytes are not the signature of what precedes them")
	}
}

func TestMetaRoundTrip(t *testing.T) {
	long := testMeta(strings.Repeat("n", MaxNodeNameLen), "10.244.255.252/30", "198.51.100.254", "fe:ff:ff:ff:ff:ff", 1<<62)
	long.VNI = 1<<24 - 1
	tests := []struct {
		name string
		meta Meta
	}{
		{"typical", testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:42:ac:11:00:02", 1754000000000000000)},
		{"zero attr version", testMeta("b", "10.0.0.0/8", "10.1.2.3", "0a:00:00:00:00:01", 0)},
		{"host subnet", testMeta("ü-node", "10.244.1.1/32", "192.0.2.1", "02:00:00:00:00:01", 7)},
		{"longest", long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.meta.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxMetaLen || MaxMetaLen > 512 {
				t.Fatalf("meta is %d bytes, MaxMetaLen %d, memberlist allows 512", len(b), MaxMetaLen)
			}
			got, err := ParseMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != unsignedVersion || !got.Equal(&tt.meta) || got.Signature != nil {
				t.Fatalf("round trip: got %+v, want %+v", got, tt.meta)
			}
			s, err := tt.meta.Sign(testKey, testAddr)
			if err != nil {
				t.Fatal(err)
			}
			if len(s) > MaxMetaLen || MaxMetaLen > 512 {
				t.Fatalf("signed meta is %d bytes, MaxMetaLen %d, memberlist allows 512", len(s), MaxMetaLen)
			}
			got, err = ParseMeta(s)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != MetaVersion || !got.Equal(&tt.meta) || got.GossipAddr != testAddr {
				t.Fatalf("signed round trip: got %+v, want %+v at %s", got, tt.meta, testAddr)
			}
			if err := got.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMetaForwardCompatible: a later version's fields (between version 2's and the signature) are
// skipped, and the signature covers them.
func TestMetaForwardCompatible(t *testing.T) {
	m := testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:42:ac:11:00:02", 5)
	b, err := m.Sign(testKey, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	body := append(bytes.Clone(b[:len(b)-ed25519.SignatureSize]), 0xde, 0xad, 0xbe, 0xef)
	body[0] = 3
	newer := append(body, ed25519.Sign(testKey, append([]byte(signDomain), body...))...)
	got, err := ParseMeta(newer)
	if err != nil {
		t.Fatalf("version 3 with extra fields: %v", err)
	}
	if got.Version != 3 || !got.Equal(&m) || got.GossipAddr != testAddr {
		t.Fatalf("got %+v, want %+v at version 3", got, m)
	}
	if err := got.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("version 3: %v", err)
	}
	body[len(body)-1] ^= 1
	tampered := append(body, newer[len(body):]...)
	if got, err := ParseMeta(tampered); err != nil || !errors.Is(got.Verify(testKey.Public().(ed25519.PublicKey)), ErrBadSignature) {
		t.Fatalf("a changed version 3 field: %v, want a signature that does not verify", err)
	}
}

// TestMetaVerify: what an attacker without the node key can make of a claim never verifies.
func TestMetaVerify(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	m := testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:42:ac:11:00:02", 5)
	genuine, err := m.Sign(testKey, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	forged, err := m.Sign(other, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	moved := bytes.Clone(genuine)
	moved[28+6+3]++ // the announced address, 192.0.2.11: a replay from elsewhere
	higher := bytes.Clone(genuine)
	higher[4] = 0x7f // AttrVersion raised
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"genuine", genuine, ""},
		{"another key", forged, "signed by key"},
		{"unsigned", unsigned, "unsigned"},
		{"address changed", moved, "does not verify"},
		{"version raised", higher, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMeta(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			err = got.Verify(pub)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want ErrBadSignature saying %q", err, tt.want)
			}
		})
	}
}

func TestParseMetaErrors(t *testing.T) {
	good, err := (&Meta{
		NodeName: "node-a", Subnet: netip.MustParsePrefix("10.244.7.0/24"), PublicIP: netip.MustParseAddr("192.0.2.10"),
		VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, VNI: 1, AttrVersion: 5,
	}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	gm := testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:00:00:00:00:01", 5)
	signedGood, err := gm.Sign(testKey, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name    string
		data    []byte
		want    string
		version bool
	}{
		{"empty", nil, "empty", false},
		{"version 0", with(func(b []byte) []byte { b[0] = 0; return b }), "version 0", true},
		{"version 128", with(func(b []byte) []byte { b[0] = 128; return b }), "version 128", true},
		{"short", good[:20], "20 bytes, version 1 needs at least 28", false},
		{"name past end", good[:len(good)-1], "NodeName: length 6 runs past the end (5 bytes left)", false},
		{"trailing v1", append(bytes.Clone(good), 0), "1 trailing bytes after a version 1 meta", false},
		{"v2 unsigned", with(func(b []byte) []byte { b[0] = 2; return b }), "34 bytes, a version 2 meta with a 6-byte name needs 112", false},
		{"trailing v2", append(bytes.Clone(signedGood), 0), "1 trailing bytes after a version 2 meta", false},
		{"v2 port 0", func() []byte { b := bytes.Clone(signedGood); b[38], b[39] = 0, 0; return b }(), "GossipAddr=192.0.2.10:0", false},
		{"prefix length", with(func(b []byte) []byte { b[26] = 33; return b }), "Subnet: prefix length 33", false},
		{"prefix zero", with(func(b []byte) []byte { b[26] = 0; return b }), "Subnet=10.244.7.0/0: want an IPv4 prefix of length 1 to 32", false},
		{"host bits", with(func(b []byte) []byte { b[25] = 1; return b }), "Subnet=10.244.7.1/24: host bits set", false},
		{"vni zero", with(func(b []byte) []byte { b[1], b[2], b[3] = 0, 0, 0; return b }), "VNI=0", false},
		{"negative attr version", with(func(b []byte) []byte { b[4] = 0x80; return b }), "AttrVersion=-9223372036854775803: negative", false},
		{"unspecified ip", with(func(b []byte) []byte { copy(b[12:16], []byte{0, 0, 0, 0}); return b }), "PublicIP=0.0.0.0", false},
		{"multicast ip", with(func(b []byte) []byte { b[12] = 224; return b }), "PublicIP=224.0.2.10", false},
		{"multicast mac", with(func(b []byte) []byte { b[16] = 1; return b }), `VtepMAC="01:00:00:00:00:01"`, false},
		{"zero mac", with(func(b []byte) []byte { copy(b[16:22], make([]byte, 6)); return b }), `VtepMAC="00:00:00:00:00:00"`, false},
		{"empty name", with(func(b []byte) []byte { b[27] = 0; return b[:28] }), "NodeName is empty", false},
		{"control in name", with(func(b []byte) []byte { b[30] = '\n'; return b }), `NodeName="no\ne-a"`, false},
		{"bad utf8", with(func(b []byte) []byte { b[30] = 0xff; return b }), "want printable UTF-8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMeta(tt.data)
			if err == nil {
				t.Fatal("parsed")
			}
			if !errors.Is(err, ErrInvalidMeta) || errors.Is(err, ErrMetaVersion) != tt.version {
				t.Fatalf("error %v: ErrInvalidMeta %v, ErrMetaVersion %v (want %v)", err,
					errors.Is(err, ErrInvalidMeta), errors.Is(err, ErrMetaVersion), tt.version)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestMarshalMetaInvalid(t *testing.T) {
	base := testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:42:ac:11:00:02", 5)
	tests := []struct {
		name string
		edit func(*Meta)
		want string
	}{
		{"no name", func(m *Meta) { m.NodeName = "" }, "NodeName is empty"},
		{"long name", func(m *Meta) { m.NodeName = strings.Repeat("x", 254) }, "NodeName is 254 bytes long, the limit is 253"},
		{"no subnet", func(m *Meta) { m.Subnet = netip.Prefix{} }, `Subnet="": want an IPv4 prefix`},
		{"ipv6 subnet", func(m *Meta) { m.Subnet = netip.MustParsePrefix("fd00::/64") }, "Subnet=fd00::/64"},
		{"no ip", func(m *Meta) { m.PublicIP = netip.Addr{} }, `PublicIP="": want a unicast IPv4 address`},
		{"ipv6 ip", func(m *Meta) { m.PublicIP = netip.MustParseAddr("2001:db8::1") }, "PublicIP=2001:db8::1"},
		{"short mac", func(m *Meta) { m.VtepMAC = m.VtepMAC[:5] }, "VtepMAC="},
		{"vni too big", func(m *Meta) { m.VNI = 1 << 24 }, "VNI=16777216: must be between 1 and 16777215"},
		{"negative version", func(m *Meta) { m.AttrVersion = -1 }, "AttrVersion=-1: negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			m.VtepMAC = bytes.Clone(base.VtepMAC)
			tt.edit(&m)
			_, err := m.MarshalBinary()
			if !errors.Is(err, ErrInvalidMeta) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalidMeta mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzParseMeta checks that ParseMeta never panics and that whatever it accepts re-encodes to a
// meta that parses back the same.
func FuzzParseMeta(f *testing.F) {
	for _, m := range []Meta{
		testMeta("node-a", "10.244.7.0/24", "192.0.2.10", "02:42:ac:11:00:02", 1754000000000000000),
		testMeta(strings.Repeat("n", MaxNodeNameLen), "10.0.0.0/8", "198.51.100.1", "0a:00:00:00:00:01", 0),
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		s, err := m.Sign(testKey, testAddr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
		v3 := append(bytes.Clone(s[:len(s)-64]), 1, 2, 3)
		v3[0] = 3
		f.Add(append(v3, s[len(s)-64:]...))
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{0x80, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeta(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("error %v does not wrap ErrInvalidMeta", err)
			}
			return
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed meta %+v does not encode: %v", m, err)
		}
		if len(b) > MaxMetaLen {
			t.Fatalf("encoded meta is %d bytes", len(b))
		}
		again, err := ParseMeta(b)
		if err != nil {
			t.Fatalf("re-encoded meta does not parse: %v", err)
		}
		if !again.Equal(m) || again.Version != unsignedVersion {
			t.Fatalf("round trip: %+v became %+v", m, again)
		}
		if m.Version == unsignedVersion && !bytes.Equal(b, data) {
			t.Fatalf("version 1 meta %x re-encodes as %x", data, b)
		}
		if m.Version > unsignedVersion && !bytes.Equal(append(bytes.Clone(m.signed), m.Signature...), data) {
			t.Fatalf("signed meta %x: signed part %x and signature %x do not make it up", data, m.signed, m.Signature)
		}
	})
}
