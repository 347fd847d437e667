package gossip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/weft-net/weft/subnet"
)

// MetaVersion is the meta format this weft writes.
//
// Compatibility rule: versions 1 to 127 share the version 1 layout, and a later version may only
// append fields after it. A reader takes the fields it knows from any such version and ignores the
// rest, so mixed weft versions interoperate during a rolling upgrade. Version 0 and versions from
// 128 on are rejected with ErrMetaVersion; they are reserved for a layout that older readers must
// not misread.
const MetaVersion = 1

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
const (
	metaFixedLen   = 28
	maxMetaVersion = 127
	// MaxNodeNameLen is the longest node name a meta can carry (a DNS name's limit).
	MaxNodeNameLen = 253
	// MaxMetaLen is the longest meta this version encodes, well inside memberlist's 512-byte limit.
	MaxMetaLen = metaFixedLen + MaxNodeNameLen
)

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

// MarshalBinary encodes the meta in the MetaVersion format. It fails on a meta that does not
// validate.
func (m *Meta) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, metaFixedLen, metaFixedLen+len(m.NodeName))
	b[0] = MetaVersion
	b[1], b[2], b[3] = byte(m.VNI>>16), byte(m.VNI>>8), byte(m.VNI)
	binary.BigEndian.PutUint64(b[4:12], uint64(m.AttrVersion))
	ip := m.PublicIP.As4()
	copy(b[12:16], ip[:])
	copy(b[16:22], m.VtepMAC)
	sn := m.Subnet.Addr().As4()
	copy(b[22:26], sn[:])
	b[26] = byte(m.Subnet.Bits())
	b[27] = byte(len(m.NodeName))
	return append(b, m.NodeName...), nil
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
	if v == MetaVersion && len(data) > end {
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
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Equal reports whether two metas carry the same fields, Version aside.
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
