package subnet

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// NodeKeySize is the length of a node key in a lease, an Ed25519 public key.
const NodeKeySize = 32

// LeaseFormat is the version of weft's own fields in a lease value. A reader ignores fields it does
// not know, so newer writers stay readable.
const LeaseFormat = 1

// LeaseAttrs is the value stored under a subnet key. Its JSON keeps every field flannel reads with
// flannel's types; weft's fields are extra keys that flannel ignores.
type LeaseAttrs struct {
	PublicIP    netip.Addr
	BackendType string
	VNI         int
	VtepMAC     net.HardwareAddr

	// Format is LeaseFormat for values weft writes, 0 for values flannel wrote.
	Format int
	// NodeName is the node that holds the lease; empty in flannel-written values.
	NodeName string
	// GossipAddr is the node's memberlist address (ip:port); invalid when it has none.
	GossipAddr netip.AddrPort
	// AttrVersion grows with every change of the attributes (unix nanoseconds of the change), so
	// that etcd's and gossip's views of a node can be ordered.
	AttrVersion int64
	// AcquiredAt is when the node took the subnet.
	AcquiredAt time.Time
	// NodeKey is the node's Ed25519 public key (NodeKeySize bytes), which signs its gossip claims;
	// nil in values flannel or an older weft wrote. (A plain byte slice: the CNI plugin links this
	// package and no crypto.)
	NodeKey []byte
}

type wireLease struct {
	PublicIP    string          `json:"PublicIP"`
	PublicIPv6  *string         `json:"PublicIPv6"`
	BackendType string          `json:"BackendType"`
	BackendData json.RawMessage `json:"BackendData"`

	WeftFormat      int        `json:"WeftFormat,omitempty"`
	WeftNode        string     `json:"WeftNode,omitempty"`
	WeftGossipAddr  string     `json:"WeftGossipAddr,omitempty"`
	WeftAttrVersion int64      `json:"WeftAttrVersion,omitempty"`
	WeftAcquiredAt  *time.Time `json:"WeftAcquiredAt,omitempty"`
	WeftNodeKey     string     `json:"WeftNodeKey,omitempty"`
}

type wireVXLANData struct {
	VNI     int    `json:"VNI"`
	VtepMAC string `json:"VtepMAC"`
}

// Validate checks the attributes weft needs to program a peer.
func (a *LeaseAttrs) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidLease}, args...)...)
	}
	ipErr, macErr := CheckPublicIP(a.PublicIP), CheckVtepMAC(a.VtepMAC)
	switch {
	case ipErr != nil:
		return bad("PublicIP=%q: want a unicast IPv4 address: %w", ipString(a.PublicIP), ipErr)
	case a.BackendType != BackendVXLAN:
		return bad("BackendType=%q: weft speaks to %q nodes only", a.BackendType, BackendVXLAN)
	case a.VNI < 1 || a.VNI > MaxVNI:
		return bad("BackendData.VNI=%d: must be between 1 and %d", a.VNI, MaxVNI)
	case macErr != nil:
		return bad("BackendData.VtepMAC=%q: want a unicast 6-byte MAC: %w", a.VtepMAC.String(), macErr)
	case a.Format < 0:
		return bad("WeftFormat=%d: negative", a.Format)
	case a.GossipAddr.IsValid() && (a.GossipAddr.Port() == 0 || !a.GossipAddr.Addr().Is4()):
		return bad("WeftGossipAddr=%q: want IPv4:port", a.GossipAddr.String())
	case a.AttrVersion < 0:
		return bad("WeftAttrVersion=%d: negative", a.AttrVersion)
	case strings.ContainsAny(a.NodeName, "\x00\n") || len(a.NodeName) > 253:
		return bad("WeftNode=%q: not a node name", a.NodeName)
	case a.NodeKey != nil && len(a.NodeKey) != NodeKeySize:
		return bad("WeftNodeKey: %d bytes, want an Ed25519 public key of %d", len(a.NodeKey), NodeKeySize)
	}
	return nil
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// MarshalJSON renders the lease value that weft writes to etcd.
func (a LeaseAttrs) MarshalJSON() ([]byte, error) {
	data, err := json.Marshal(wireVXLANData{VNI: a.VNI, VtepMAC: a.VtepMAC.String()})
	if err != nil {
		return nil, err
	}
	w := wireLease{
		PublicIP: ipString(a.PublicIP), BackendType: a.BackendType, BackendData: data,
		WeftFormat: a.Format, WeftNode: a.NodeName, WeftAttrVersion: a.AttrVersion,
	}
	if a.GossipAddr.IsValid() {
		w.WeftGossipAddr = a.GossipAddr.String()
	}
	if a.NodeKey != nil {
		w.WeftNodeKey = base64.StdEncoding.EncodeToString(a.NodeKey)
	}
	if !a.AcquiredAt.IsZero() {
		t := a.AcquiredAt.UTC()
		w.WeftAcquiredAt = &t
	}
	return json.Marshal(w)
}

// ParseLeaseAttrs decodes and validates a lease value written by weft or by flannel. Unknown fields
// are ignored (flannel and newer weft versions add some); a field weft reads with a bad value is an
// error naming it.
func ParseLeaseAttrs(data []byte) (*LeaseAttrs, error) {
	var w wireLease
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidLease, describeJSONError(err, ""))
	}
	if w.PublicIPv6 != nil {
		return nil, fmt.Errorf("%w: PublicIPv6=%q: %w: weft has no IPv6 underlay yet", ErrInvalidLease, *w.PublicIPv6, ErrUnsupported)
	}
	a := &LeaseAttrs{
		BackendType: w.BackendType, Format: w.WeftFormat, NodeName: w.WeftNode,
		AttrVersion: w.WeftAttrVersion,
	}
	var err error
	if a.PublicIP, err = netip.ParseAddr(w.PublicIP); err != nil {
		return nil, fmt.Errorf("%w: PublicIP=%q: not an IP address", ErrInvalidLease, w.PublicIP)
	}
	if w.WeftAcquiredAt != nil {
		a.AcquiredAt = w.WeftAcquiredAt.UTC()
	}
	if w.WeftGossipAddr != "" {
		if a.GossipAddr, err = netip.ParseAddrPort(w.WeftGossipAddr); err != nil {
			return nil, fmt.Errorf("%w: WeftGossipAddr=%q: not ip:port", ErrInvalidLease, w.WeftGossipAddr)
		}
	}
	if w.WeftNodeKey != "" {
		key, err := base64.StdEncoding.DecodeString(w.WeftNodeKey)
		if err != nil {
			return nil, fmt.Errorf("%w: WeftNodeKey=%q: not base64", ErrInvalidLease, w.WeftNodeKey)
		}
		a.NodeKey = key
	}
	var d wireVXLANData
	if len(w.BackendData) == 0 || bytes.Equal(w.BackendData, []byte("null")) {
		return nil, fmt.Errorf("%w: BackendData is missing", ErrInvalidLease)
	}
	if err := json.Unmarshal(w.BackendData, &d); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidLease, describeJSONError(err, "BackendData."))
	}
	a.VNI = d.VNI
	if a.VtepMAC, err = net.ParseMAC(d.VtepMAC); err != nil {
		return nil, fmt.Errorf("%w: BackendData.VtepMAC=%q: not a MAC address", ErrInvalidLease, d.VtepMAC)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// LeaseIdentity is what a lease value says about its holder, read leniently: a value that does not
// validate (a reservation made before its node knew its VTEP MAC, a value with a bad field) still
// names its node.
type LeaseIdentity struct {
	// NodeName is WeftNode; empty in flannel-written values.
	NodeName string
	// PublicIP is the PublicIP field as written, which need not parse.
	PublicIP string
	// VtepMAC is BackendData.VtepMAC as written; empty when missing.
	VtepMAC string
}

type wireIdentity struct {
	PublicIP    string          `json:"PublicIP"`
	WeftNode    string          `json:"WeftNode"`
	BackendData json.RawMessage `json:"BackendData"`
}

// ReadLeaseIdentity decodes the holder's fields of any lease value. It returns the fields that
// decode, and an error wrapping ErrInvalidLease when the value is not JSON or one of the fields has
// the wrong type; ParseLeaseAttrs is the strict decoder.
func ReadLeaseIdentity(data []byte) (LeaseIdentity, error) {
	var w wireIdentity
	err := json.Unmarshal(data, &w)
	id := LeaseIdentity{NodeName: w.WeftNode, PublicIP: w.PublicIP}
	var d struct {
		VtepMAC string `json:"VtepMAC"`
	}
	if len(w.BackendData) > 0 && json.Unmarshal(w.BackendData, &d) == nil {
		id.VtepMAC = d.VtepMAC
	}
	if err != nil {
		return id, fmt.Errorf("%w: %s", ErrInvalidLease, describeJSONError(err, ""))
	}
	return id, nil
}

// Addr is the public IP, invalid when it does not parse.
func (id LeaseIdentity) Addr() netip.Addr {
	a, err := netip.ParseAddr(id.PublicIP)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// Pending reports whether the value is a reservation its node has not taken yet: it names the node
// and its IPv4 address, but not the VTEP MAC, which the node writes when it takes the subnet.
func (id LeaseIdentity) Pending() bool {
	return id.NodeName != "" && id.Addr().Is4() && id.VtepMAC == ""
}

// Holder renders the holder for messages.
func (id LeaseIdentity) Holder() string {
	switch {
	case id.NodeName != "":
		return fmt.Sprintf("node %q", id.NodeName)
	case id.PublicIP != "":
		return fmt.Sprintf("a flannel node at %s", id.PublicIP)
	}
	return "an unknown holder"
}

// Equal reports whether two attribute sets are the same.
func (a *LeaseAttrs) Equal(b *LeaseAttrs) bool {
	return a.PublicIP == b.PublicIP && a.BackendType == b.BackendType && a.VNI == b.VNI &&
		bytes.Equal(a.VtepMAC, b.VtepMAC) && a.Format == b.Format && a.NodeName == b.NodeName &&
		a.GossipAddr == b.GossipAddr && a.AttrVersion == b.AttrVersion && a.AcquiredAt.Equal(b.AcquiredAt) &&
		bytes.Equal(a.NodeKey, b.NodeKey)
}

// Lease is a subnet held by a node, as read from etcd.
type Lease struct {
	Subnet netip.Prefix
	Attrs  LeaseAttrs
	// EtcdLease is the etcd lease ID keeping the key alive; 0 for a reservation.
	EtcdLease int64
	// Expiry is when the etcd lease runs out unless renewed (zero when unknown or reserved).
	Expiry time.Time
	// ModRevision is the etcd revision of the last write to the key.
	ModRevision int64
	// CreateRevision is the etcd revision that created the key: the lower, the older the lease.
	// Peers resolve conflicting leases (one subnet, one VTEP MAC) in favour of the older.
	CreateRevision int64
}

// Reserved reports whether the lease is a reservation: a key with no etcd lease, never expiring.
func (l *Lease) Reserved() bool { return l.EtcdLease == 0 }

// SubnetKey renders a subnet as flannel names its key: 10.244.7.0/24 → "10.244.7.0-24".
func SubnetKey(s netip.Prefix) string {
	return s.Addr().String() + "-" + fmt.Sprint(s.Bits())
}

// ParseSubnetKey parses the last element of a subnet key, "10.244.7.0-24", or flannel's dual-stack
// form "10.244.7.0-24&fc00::-64", whose IPv6 part weft ignores.
func ParseSubnetKey(key string) (netip.Prefix, error) {
	v4, _, _ := strings.Cut(key, "&")
	addr, bits, ok := strings.Cut(v4, "-")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: key %q: want <ip>-<prefix length>", ErrInvalidLease, key)
	}
	p, err := netip.ParsePrefix(addr + "/" + bits)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: key %q: not an IPv4 subnet", ErrInvalidLease, key)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%w: key %q: host bits set", ErrInvalidLease, key)
	}
	return p, nil
}
