package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/weft-net/weft/subnet"
)

// MetaVersion is the meta format this weft writes when it signs its claims (Meta.Sign); unsigned
// meta (Meta.MarshalBinary, for a member without a node key) is version 1.
//
// Compatibility rule: versions 1 to 127 share the version 1 layout, and a later version may only
// append fields after it. A reader takes the fields it knows from any such version and ignores the
// rest, so mixed weft versions interoperate during a rolling upgrade. Version 0 and versions from
// 128 on are rejected with ErrMetaVersion; they are reserved for a layout that older readers must
// not misread.
const MetaVersion = 2

// unsignedVersion is the version of unsigned meta.
const unsignedVersion = 1

// Meta layout, version 1 (integers big-endian):
//
//	offset size field
//	0      1    format version
//	1      3    VNI
//	4      8    AttrVersion (non-negative)
//	12     4    public IPv4 address
//	16     6    VTEP MAC
//	22     4    subnet address (IPv4, masked)
//	26     1    subnet prefix length
//	27     1    node name length n
//	28     n    node name (UTF-8)
//	28+n   ...  fields of later versions
//
// Version 2 appends, at e = 28+n:
//
//	e      4    gossip IPv4 address the member announces
//	e+4    2    gossip port
//	e+6    8    key id (NodeKeyID of the node key)
//	...         fields of later versions
//	end-64 64   Ed25519 signature over signDomain and every byte before it
//
// The signature is always last, so that it covers the fields later versions add.
const (
	metaFixedLen   = 28
	maxMetaVersion = 127
	// MaxNodeNameLen is the longest node name a meta can carry (a DNS name's limit).
	MaxNodeNameLen = 253
	// v2FieldsLen is the length of version 2's fields, signature aside.
	v2FieldsLen = 4 + 2 + KeyIDLen
	// MaxMetaLen is the longest meta this version encodes, well inside memberlist's 512-byte limit.
	MaxMetaLen = metaFixedLen + MaxNodeNameLen + v2FieldsLen + ed25519.SignatureSize
)

// signDomain prefixes what a meta signature covers, so that it cannot be taken for another
// message signed by the same key.
const signDomain = "weft gossip meta\x00"

// Meta is what a node advertises about itself in its memberlist meta.
type Meta struct {
	// Version is the format version the meta was written in; ParseMeta sets it. MarshalBinary
	// always writes MetaVersion.
	Version uint8
	// NodeName is the node's name; it must equal the memberlist member name.
	NodeName string
	// Subnet is the pod subnet the node claims to hold.
	Subnet netip.Prefix
	// PublicIP is the node's underlay address, the VXLAN tunnel endpoint.
	PublicIP netip.Addr
	// VtepMAC is the MAC address of the node's VXLAN device.
	VtepMAC net.HardwareAddr
	// VNI is the VXLAN network identifier the node uses.
	VNI int
	// AttrVersion orders attribute changes; it is the lease's subnet.LeaseAttrs.AttrVersion.
	AttrVersion int64
	// GossipAddr is the memberlist address the member announces (version 2); Sign fills it in the
	// caller's meta from the address given, and a verifier compares it with the announced one.
	GossipAddr netip.AddrPort
	// KeyID and Signature are set by ParseMeta for a signed (version 2) meta.
	KeyID     [KeyIDLen]byte
	Signature []byte
	// signed is the part of the encoded meta the signature covers, signDomain aside.
	signed []byte
}

// Validate checks every field of the meta.
func (m *Meta) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidMeta}, args...)...)
	}
	ipErr, macErr := subnet.CheckPublicIP(m.PublicIP), subnet.CheckVtepMAC(m.VtepMAC)
	switch {
	case m.NodeName == "":
		return bad("NodeName is empty")
	case len(m.NodeName) > MaxNodeNameLen:
		return bad("NodeName is %d bytes long, the limit is %d", len(m.NodeName), MaxNodeNameLen)
	case !validNodeName(m.NodeName):
		return bad("NodeName=%q: want printable UTF-8", m.NodeName)
	case !m.Subnet.IsValid() || !m.Subnet.Addr().Is4() || m.Subnet.Bits() < 1:
		return bad("Subnet=%s: want an IPv4 prefix of length 1 to 32", prefixString(m.Subnet))
	case m.Subnet.Masked() != m.Subnet:
		return bad("Subnet=%s: host bits set", m.Subnet)
	case ipErr != nil:
		return bad("PublicIP=%s: want a unicast IPv4 address: %w", addrString(m.PublicIP), ipErr)
	case macErr != nil:
		return bad("VtepMAC=%q: want a unicast 6-byte MAC: %w", m.VtepMAC.String(), macErr)
	case m.VNI < 1 || m.VNI > subnet.MaxVNI:
		return bad("VNI=%d: must be between 1 and %d", m.VNI, subnet.MaxVNI)
	case m.AttrVersion < 0:
		return bad("AttrVersion=%d: negative", m.AttrVersion)
	case m.GossipAddr.IsValid() && (!m.GossipAddr.Addr().Is4() || m.GossipAddr.Port() == 0):
		return bad("GossipAddr=%s: want IPv4:port", m.GossipAddr)
	}
	return nil
}

func validNodeName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// MarshalBinary encodes the meta unsigned, in version 1, for a member without a node key. It fails
// on a meta that does not validate.
func (m *Meta) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m.appendV1(unsignedVersion), nil
}

// Sign encodes the meta in MetaVersion, announcing addr as the member's gossip address, and signs
// it with the node key. Peers admit the member only when the signature verifies with the key in
// the node's lease and addr is the address the member is gossiping from.
func (m *Meta) Sign(key ed25519.PrivateKey, addr netip.AddrPort) ([]byte, error) {
	c := *m
	c.GossipAddr = addr
	if !addr.IsValid() {
		return nil, fmt.Errorf("%w: GossipAddr is missing: a signed meta names its address", ErrInvalidMeta)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b := c.appendV1(MetaVersion)
	ip, id := addr.Addr().As4(), NodeKeyID(key.Public().(ed25519.PublicKey))
	b = append(b, ip[:]...)
	b = binary.BigEndian.AppendUint16(b, addr.Port())
	b = append(b, id[:]...)
	return append(b, ed25519.Sign(key, append([]byte(signDomain), b...))...), nil
}

// appendV1 encodes the version 1 fields, marked as the given version.
func (m *Meta) appendV1(version uint8) []byte {
	b := make([]byte, metaFixedLen, MaxMetaLen)
	b[0] = version
	b[1], b[2], b[3] = byte(m.VNI>>16), byte(m.VNI>>8), byte(m.VNI)
	binary.BigEndian.PutUint64(b[4:12], uint64(m.AttrVersion))
	ip := m.PublicIP.As4()
	copy(b[12:16], ip[:])
	copy(b[16:22], m.VtepMAC)
	sn := m.Subnet.Addr().As4()
	copy(b[22:26], sn[:])
	b[26] = byte(m.Subnet.Bits())
	b[27] = byte(len(m.NodeName))
	return append(b, m.NodeName...)
}

// Signed returns the bytes the signature covers (signDomain aside); nil for unsigned meta.
func (m *Meta) Signed() []byte { return m.signed }

// Verify checks that the meta is signed by pub: ErrBadSignature when it is unsigned, signed by
// another key, or its signature does not verify.
func (m *Meta) Verify(pub ed25519.PublicKey) error {
	switch {
	case m.Signature == nil:
		return fmt.Errorf("%w: the meta is unsigned (version %d)", ErrBadSignature, m.Version)
	case len(pub) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: no valid public key to verify with", ErrBadSignature)
	case m.KeyID != NodeKeyID(pub):
		return fmt.Errorf("%w: signed by key %x, the lease has key %x", ErrBadSignature, m.KeyID, NodeKeyID(pub))
	case !ed25519.Verify(pub, append([]byte(signDomain), m.signed...), m.Signature):
		return fmt.Errorf("%w: the signature does not verify", ErrBadSignature)
	}
	return nil
}

// ParseMeta decodes and validates meta written by any compatible weft version (see MetaVersion).
func ParseMeta(data []byte) (*Meta, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidMeta)
	}
	v := data[0]
	if v == 0 || v > maxMetaVersion {
		return nil, fmt.Errorf("%w: %w: version %d (this weft reads 1 to %d)", ErrInvalidMeta, ErrMetaVersion, v, maxMetaVersion)
	}
	if len(data) < metaFixedLen {
		return nil, fmt.Errorf("%w: %d bytes, version %d needs at least %d", ErrInvalidMeta, len(data), v, metaFixedLen)
	}
	n := int(data[27])
	end := metaFixedLen + n
	if len(data) < end {
		return nil, fmt.Errorf("%w: NodeName: length %d runs past the end (%d bytes left)", ErrInvalidMeta, n, len(data)-metaFixedLen)
	}
	if v == unsignedVersion && len(data) > end {
		return nil, fmt.Errorf("%w: %d trailing bytes after a version %d meta", ErrInvalidMeta, len(data)-end, v)
	}
	bits := int(data[26])
	if bits > 32 {
		return nil, fmt.Errorf("%w: Subnet: prefix length %d", ErrInvalidMeta, bits)
	}
	m := &Meta{
		Version:     v,
		VNI:         int(data[1])<<16 | int(data[2])<<8 | int(data[3]),
		AttrVersion: int64(binary.BigEndian.Uint64(data[4:12])),
		PublicIP:    netip.AddrFrom4([4]byte(data[12:16])),
		VtepMAC:     net.HardwareAddr(bytes.Clone(data[16:22])),
		Subnet:      netip.PrefixFrom(netip.AddrFrom4([4]byte(data[22:26])), bits),
		NodeName:    string(data[metaFixedLen:end]),
	}
	if v > unsignedVersion {
		if err := m.parseSigned(data, end); err != nil {
			return nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseSigned reads the fields of version 2 and later, which start at end, and the signature.
func (m *Meta) parseSigned(data []byte, end int) error {
	need := end + v2FieldsLen + ed25519.SignatureSize
	switch {
	case len(data) < need:
		return fmt.Errorf("%w: %d bytes, a version %d meta with a %d-byte name needs %d", ErrInvalidMeta, len(data), m.Version, end-metaFixedLen, need)
	case m.Version == MetaVersion && len(data) > need:
		return fmt.Errorf("%w: %d trailing bytes after a version %d meta", ErrInvalidMeta, len(data)-need, m.Version)
	}
	f := data[end:]
	m.GossipAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(f[0:4])), binary.BigEndian.Uint16(f[4:6]))
	m.KeyID = [KeyIDLen]byte(f[6 : 6+KeyIDLen])
	cut := len(data) - ed25519.SignatureSize
	m.signed, m.Signature = bytes.Clone(data[:cut]), bytes.Clone(data[cut:])
	if !m.GossipAddr.IsValid() || m.GossipAddr.Port() == 0 {
		return fmt.Errorf("%w: GossipAddr=%s: want IPv4:port", ErrInvalidMeta, m.GossipAddr)
	}
	return nil
}

// Equal reports whether two metas claim the same: name, subnet and attributes (the version, the
// announced address and the signature aside).
func (m *Meta) Equal(o *Meta) bool {
	return m.NodeName == o.NodeName && m.Subnet == o.Subnet && m.PublicIP == o.PublicIP &&
		bytes.Equal(m.VtepMAC, o.VtepMAC) && m.VNI == o.VNI && m.AttrVersion == o.AttrVersion
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return `""`
	}
	return a.String()
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return `""`
	}
	return p.String()
}
