package subnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// Network config defaults, as flannel applies them.
const (
	DefaultVNI  = 1
	DefaultPort = 8472
	// MaxVNI is the largest VXLAN network identifier (24 bits).
	MaxVNI = 1<<24 - 1
	// MaxFlannelVNI is the largest VNI a flannel node can read: its lease field is 16-bit.
	MaxFlannelVNI = 1<<16 - 1
	// BackendVXLAN is the only backend type weft implements.
	BackendVXLAN = "vxlan"
)

// Config is the cluster network config stored at <prefix>/config, in flannel's JSON format.
type Config struct {
	Network   netip.Prefix
	SubnetLen int
	SubnetMin netip.Addr
	SubnetMax netip.Addr
	Backend   BackendConfig
}

// BackendConfig is the "Backend" object of the network config.
type BackendConfig struct {
	Type          string
	VNI           int
	Port          int
	MTU           int
	DirectRouting bool
	GBP           bool
	Learning      bool
}

// wireConfig is the JSON form. The fields after Backend are flannel's, accepted only with values that
// need nothing weft lacks. encoding/json matches names case-insensitively, as flannel's decoder does.
type wireConfig struct {
	Network   string          `json:"Network"`
	SubnetLen int             `json:"SubnetLen,omitempty"`
	SubnetMin string          `json:"SubnetMin,omitempty"`
	SubnetMax string          `json:"SubnetMax,omitempty"`
	Backend   json.RawMessage `json:"Backend,omitempty"`

	EnableIPv4     *bool  `json:"EnableIPv4,omitempty"`
	EnableIPv6     *bool  `json:"EnableIPv6,omitempty"`
	EnableNFTables *bool  `json:"EnableNFTables,omitempty"`
	IPv6Network    string `json:"IPv6Network,omitempty"`
	IPv6SubnetLen  int    `json:"IPv6SubnetLen,omitempty"`
	IPv6SubnetMin  string `json:"IPv6SubnetMin,omitempty"`
	IPv6SubnetMax  string `json:"IPv6SubnetMax,omitempty"`
}

type wireBackend struct {
	Type          string `json:"Type"`
	VNI           int    `json:"VNI,omitempty"`
	Port          int    `json:"Port,omitempty"`
	MTU           int    `json:"MTU,omitempty"`
	DirectRouting bool   `json:"DirectRouting,omitempty"`
	GBP           bool   `json:"GBP,omitempty"`
	Learning      bool   `json:"Learning,omitempty"`
	MacPrefix     string `json:"MacPrefix,omitempty"`
}

// ParseConfig decodes a network config strictly, applies flannel's defaults and validates it. An
// unknown field is an error naming it: weftctl and local config files use it.
func ParseConfig(data []byte) (*Config, error) {
	c, _, err := parseConfig(data, true)
	return c, err
}

// ParseConfigLenient is ParseConfig for a config shared with other weft versions (the one in etcd
// during a rolling upgrade): it ignores the fields it does not know and returns their names
// (Backend's prefixed "Backend."), sorted, for the caller to log. Every other check is ParseConfig's.
func ParseConfigLenient(data []byte) (*Config, []string, error) {
	return parseConfig(data, false)
}

func parseConfig(data []byte, strict bool) (*Config, []string, error) {
	var w wireConfig
	if err := decodeObject(data, &w, "", strict); err != nil {
		return nil, nil, err
	}
	if err := w.checkFlannelFields(); err != nil {
		return nil, nil, err
	}
	var unknown []string
	if !strict {
		unknown = unknownFields(data, wireConfig{}, "")
	}
	var b wireBackend
	if len(w.Backend) > 0 && !bytes.Equal(bytes.TrimSpace(w.Backend), []byte("null")) {
		if err := decodeObject(w.Backend, &b, "Backend.", strict); err != nil {
			return nil, nil, err
		}
		if !strict {
			unknown = append(unknown, unknownFields(w.Backend, wireBackend{}, "Backend.")...)
		}
	}
	c, err := b.config(&w)
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(unknown)
	return c, unknown, nil
}

// config builds and validates the config that w and its backend b give.
func (b *wireBackend) config(w *wireConfig) (*Config, error) {
	if b.MacPrefix != "" {
		return nil, fmt.Errorf("%w: Backend.MacPrefix=%q: %w (weft sets each VTEP MAC itself)", ErrInvalidConfig, b.MacPrefix, ErrUnsupported)
	}
	c := &Config{
		SubnetLen: w.SubnetLen,
		Backend: BackendConfig{
			Type: b.Type, VNI: b.VNI, Port: b.Port, MTU: b.MTU,
			DirectRouting: b.DirectRouting, GBP: b.GBP, Learning: b.Learning,
		},
	}
	var err error
	if w.Network == "" {
		return nil, fmt.Errorf("%w: Network is missing", ErrInvalidConfig)
	}
	if c.Network, err = netip.ParsePrefix(w.Network); err != nil {
		return nil, fmt.Errorf("%w: Network=%q: not a CIDR prefix", ErrInvalidConfig, w.Network)
	}
	if c.SubnetMin, err = parseOptionalAddr("SubnetMin", w.SubnetMin); err != nil {
		return nil, err
	}
	if c.SubnetMax, err = parseOptionalAddr("SubnetMax", w.SubnetMax); err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (w *wireConfig) checkFlannelFields() error {
	unsupported := func(field, val, why string) error {
		return fmt.Errorf("%w: %s=%s: %w: %s", ErrInvalidConfig, field, val, ErrUnsupported, why)
	}
	switch {
	case w.EnableIPv4 != nil && !*w.EnableIPv4:
		return unsupported("EnableIPv4", "false", "weft needs an IPv4 pod network")
	case w.EnableIPv6 != nil && *w.EnableIPv6:
		return unsupported("EnableIPv6", "true", "weft has no IPv6 pod network yet")
	case w.EnableNFTables != nil && *w.EnableNFTables:
		return unsupported("EnableNFTables", "true", "weft installs its rules through iptables (nft or legacy backend)")
	case w.IPv6Network != "":
		return unsupported("IPv6Network", fmt.Sprintf("%q", w.IPv6Network), "weft has no IPv6 pod network yet")
	case w.IPv6SubnetLen != 0:
		return unsupported("IPv6SubnetLen", fmt.Sprint(w.IPv6SubnetLen), "weft has no IPv6 pod network yet")
	case w.IPv6SubnetMin != "":
		return unsupported("IPv6SubnetMin", fmt.Sprintf("%q", w.IPv6SubnetMin), "weft has no IPv6 pod network yet")
	case w.IPv6SubnetMax != "":
		return unsupported("IPv6SubnetMax", fmt.Sprintf("%q", w.IPv6SubnetMax), "weft has no IPv6 pod network yet")
	}
	return nil
}

func parseOptionalAddr(field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %s=%q: not an IP address", ErrInvalidConfig, field, s)
	}
	return a, nil
}

// decodeObject decodes one JSON object, rejecting type mismatches, trailing data and, when strict,
// unknown fields, with an error that names the field (prefixed with path).
func decodeObject(data []byte, v any, path string, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, describeJSONError(err, path))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidConfig)
	}
	return nil
}

// unknownFieldPrefix starts encoding/json's error for a field the target does not have.
const unknownFieldPrefix = "json: unknown field "

// unknownFields returns the names (prefixed with path) of the members of the JSON object data that
// a strict decode into a value of zero's type rejects. Each member is tried alone, so that
// encoding/json's own name matching decides.
func unknownFields(data []byte, zero any, path string) []string {
	var members map[string]json.RawMessage
	if json.Unmarshal(data, &members) != nil {
		return nil
	}
	var out []string
	for name := range members {
		probe, err := json.Marshal(map[string]any{name: nil})
		if err != nil {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(probe))
		dec.DisallowUnknownFields()
		v := reflect.New(reflect.TypeOf(zero)).Interface()
		if err := dec.Decode(v); err != nil && strings.HasPrefix(err.Error(), unknownFieldPrefix) {
			out = append(out, path+name)
		}
	}
	return out
}

func describeJSONError(err error, path string) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Sprintf("%snot a JSON object (got %s)", strings.TrimSuffix(path, ".")+prefixSep(path), typeErr.Value)
		}
		return fmt.Sprintf("%s%s: got %s, want %s", path, typeErr.Field, typeErr.Value, jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.EOF):
		return "empty document"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, unknownFieldPrefix); ok {
		return fmt.Sprintf("unknown field %s%s", path, strings.Trim(f, `"`))
	}
	return strings.TrimPrefix(msg, "json: ")
}

func prefixSep(path string) string {
	if path == "" {
		return ""
	}
	return ": "
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "uint32", "uint16":
		return "number"
	case "slice", "map":
		return "raw JSON"
	case "ptr":
		return "boolean"
	}
	return goKind
}

// SetDefaults fills the fields that are zero with flannel's defaults.
func (c *Config) SetDefaults() {
	if c.Backend.Type == "" {
		c.Backend.Type = BackendVXLAN
	}
	if c.Backend.VNI == 0 {
		c.Backend.VNI = DefaultVNI
	}
	if c.Backend.Port == 0 {
		c.Backend.Port = DefaultPort
	}
	if !c.Network.IsValid() || !c.Network.Addr().Is4() || c.Network != c.Network.Masked() {
		return
	}
	if c.SubnetLen == 0 {
		if c.Network.Bits() <= 22 {
			c.SubnetLen = 24
		} else {
			c.SubnetLen = c.Network.Bits() + 2
		}
	}
	if c.SubnetLen <= c.Network.Bits() || c.SubnetLen > 30 {
		return
	}
	if !c.SubnetMin.IsValid() {
		c.SubnetMin = addUint32(c.Network.Addr(), c.subnetSize())
	}
	if !c.SubnetMax.IsValid() {
		c.SubnetMax = addUint32(c.Network.Addr(), (uint32(1)<<(32-c.Network.Bits()))-c.subnetSize())
	}
}

// Validate checks every field; the error names the first field at fault and its value.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	n := c.Network
	switch {
	case !n.IsValid():
		return bad("Network is missing")
	case !n.Addr().Is4():
		return fmt.Errorf("%w: Network=%s: %w: weft has no IPv6 pod network yet", ErrInvalidConfig, n, ErrUnsupported)
	case n != n.Masked():
		return bad("Network=%s: host bits set (did you mean %s?)", n, n.Masked())
	case n.Bits() < 8 || n.Bits() > 28:
		return bad("Network=%s: prefix length must be between /8 and /28", n)
	case c.SubnetLen <= n.Bits() || c.SubnetLen > 30:
		return bad("SubnetLen=%d: must be longer than the network's /%d and at most 30", c.SubnetLen, n.Bits())
	}
	if err := c.checkBound("SubnetMin", c.SubnetMin); err != nil {
		return err
	}
	if err := c.checkBound("SubnetMax", c.SubnetMax); err != nil {
		return err
	}
	if c.SubnetMin.Compare(c.SubnetMax) > 0 {
		return bad("SubnetMin=%s is above SubnetMax=%s", c.SubnetMin, c.SubnetMax)
	}
	b := c.Backend
	switch {
	case b.Type != BackendVXLAN:
		return fmt.Errorf("%w: Backend.Type=%q: %w: weft implements the %q backend only", ErrInvalidConfig, b.Type, ErrUnsupported, BackendVXLAN)
	case b.VNI < 1 || b.VNI > MaxVNI:
		return bad("Backend.VNI=%d: must be between 1 and %d", b.VNI, MaxVNI)
	case b.Port < 1 || b.Port > 65535:
		return bad("Backend.Port=%d: must be between 1 and 65535", b.Port)
	}
	if b.MTU != 0 {
		if err := CheckMTU(b.MTU); err != nil {
			return bad("Backend.MTU=%v, or 0 to derive it from the underlay", err)
		}
	}
	return nil
}

// ValidateFlannelShared adds the checks that apply when flannel nodes share the etcd prefix.
func (c *Config) ValidateFlannelShared() error {
	if c.Backend.VNI > MaxFlannelVNI {
		return fmt.Errorf("%w: Backend.VNI=%d: flannel nodes share this prefix and read the VNI as 16-bit, so it must be at most %d", ErrInvalidConfig, c.Backend.VNI, MaxFlannelVNI)
	}
	return nil
}

func (c *Config) checkBound(field string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: %s is missing", ErrInvalidConfig, field)
	case !c.Network.Contains(a):
		return fmt.Errorf("%w: %s=%s: not inside Network=%s", ErrInvalidConfig, field, a, c.Network)
	case netip.PrefixFrom(a, c.SubnetLen).Masked().Addr() != a:
		return fmt.Errorf("%w: %s=%s: not on a /%d subnet boundary", ErrInvalidConfig, field, a, c.SubnetLen)
	}
	return nil
}

// MarshalJSON renders the config in flannel's format with every default spelled out, so that
// ParseConfig(MarshalJSON(c)) == c.
func (c *Config) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(wireBackend{
		Type: c.Backend.Type, VNI: c.Backend.VNI, Port: c.Backend.Port, MTU: c.Backend.MTU,
		DirectRouting: c.Backend.DirectRouting, GBP: c.Backend.GBP, Learning: c.Backend.Learning,
	})
	if err != nil {
		return nil, err
	}
	w := wireConfig{Network: c.Network.String(), SubnetLen: c.SubnetLen, Backend: b}
	if c.SubnetMin.IsValid() {
		w.SubnetMin = c.SubnetMin.String()
	}
	if c.SubnetMax.IsValid() {
		w.SubnetMax = c.SubnetMax.String()
	}
	return json.Marshal(w)
}

func (c *Config) subnetSize() uint32 { return uint32(1) << (32 - c.SubnetLen) }

// SubnetCount is the number of subnets between SubnetMin and SubnetMax, both included.
func (c *Config) SubnetCount() int {
	return int((addrUint32(c.SubnetMax)-addrUint32(c.SubnetMin))/c.subnetSize()) + 1
}

// SubnetAt returns the i-th allocatable subnet, 0 <= i < SubnetCount().
func (c *Config) SubnetAt(i int) netip.Prefix {
	return netip.PrefixFrom(addUint32(c.SubnetMin, uint32(i)*c.subnetSize()), c.SubnetLen)
}

// Covers reports whether s is a subnet of the config's length inside Network: a node keeps a key of
// its own only then. (Allocatable also asks for SubnetMin..SubnetMax.)
func (c *Config) Covers(s netip.Prefix) bool {
	return c.Network.Contains(s.Addr()) && s.Bits() == c.SubnetLen
}

// Allocatable reports whether s is one of the subnets this config hands out.
func (c *Config) Allocatable(s netip.Prefix) bool {
	a := s.Addr()
	return s.Bits() == c.SubnetLen && s.Masked() == s && a.Is4() &&
		a.Compare(c.SubnetMin) >= 0 && a.Compare(c.SubnetMax) <= 0
}

func addrUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addUint32(a netip.Addr, n uint32) netip.Addr {
	v := addrUint32(a) + n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
