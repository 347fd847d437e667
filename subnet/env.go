package subnet

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weft-net/weft/internal/atomicfile"
)

// Env is the content of the subnet.env file weftd writes for the CNI plugin and for tools that read
// flannel's file. The FLANNEL_* keys keep flannel's format; WEFT_* keys are weft's own.
type Env struct {
	// Network is the cluster pod network (FLANNEL_NETWORK).
	Network netip.Prefix
	// Subnet is this node's pod subnet, masked (10.244.31.0/24). The file holds the gateway form
	// flannel writes, the first host address with the prefix length (FLANNEL_SUBNET=10.244.31.1/24).
	Subnet netip.Prefix
	// MTU is the MTU pods must use (FLANNEL_MTU).
	MTU int
	// IPMasq tells whether the node masquerades pod traffic leaving the pod network (FLANNEL_IPMASQ).
	IPMasq bool
	// Ready is true while weftd holds its lease and has programmed its peers (WEFT_READY).
	Ready bool
	// LeaseExpiry is when the node's etcd lease runs out unless weftd renews it: its last confirmed
	// renewal plus the TTL (WEFT_LEASE_EXPIRY, RFC 3339). Zero for a lease that never expires (a
	// reservation) or an expiry not known yet. Past it, another node may hold the subnet.
	LeaseExpiry time.Time
}

// DefaultEnvFile is where weftd writes subnet.env and the CNI plugin reads it, as flannel's
// /run/flannel/subnet.env.
const DefaultEnvFile = "/run/weft/subnet.env"

// Env file keys.
const (
	EnvNetwork = "FLANNEL_NETWORK"
	EnvSubnet  = "FLANNEL_SUBNET"
	EnvMTU     = "FLANNEL_MTU"
	EnvIPMasq  = "FLANNEL_IPMASQ"
	EnvReady   = "WEFT_READY"
	EnvExpiry  = "WEFT_LEASE_EXPIRY"
)

// Equal reports whether two Envs say the same.
func (e *Env) Equal(o *Env) bool {
	a, b := *e, *o
	a.LeaseExpiry, b.LeaseExpiry = time.Time{}, time.Time{}
	return a == b && e.LeaseExpiry.Equal(o.LeaseExpiry)
}

// Expired reports whether the lease's expiry has passed at now.
func (e *Env) Expired(now time.Time) bool {
	return !e.LeaseExpiry.IsZero() && !now.Before(e.LeaseExpiry)
}

// Gateway returns the node-side address of the subnet: its first host address.
func (e *Env) Gateway() netip.Addr { return e.Subnet.Addr().Next() }

// Validate checks that the values are usable and consistent.
func (e *Env) Validate() error {
	if !e.Network.IsValid() || !e.Network.Addr().Is4() {
		return fmt.Errorf("%w: %s: missing or not an IPv4 prefix", ErrInvalidEnv, EnvNetwork)
	}
	if e.Network != e.Network.Masked() {
		return fmt.Errorf("%w: %s=%s: host bits set (network is %s)", ErrInvalidEnv, EnvNetwork, e.Network, e.Network.Masked())
	}
	if !e.Subnet.IsValid() || !e.Subnet.Addr().Is4() {
		return fmt.Errorf("%w: %s: missing or not an IPv4 prefix", ErrInvalidEnv, EnvSubnet)
	}
	if e.Subnet != e.Subnet.Masked() {
		return fmt.Errorf("%w: %s=%s: not masked", ErrInvalidEnv, EnvSubnet, e.Subnet)
	}
	if e.Subnet.Bits() > 30 {
		return fmt.Errorf("%w: %s=%s: a node subnet must be /30 or larger", ErrInvalidEnv, EnvSubnet, e.Subnet)
	}
	if e.Subnet.Bits() < e.Network.Bits() || !e.Network.Contains(e.Subnet.Addr()) {
		return fmt.Errorf("%w: %s=%s is not inside %s=%s", ErrInvalidEnv, EnvSubnet, e.Subnet, EnvNetwork, e.Network)
	}
	if err := CheckMTU(e.MTU); err != nil {
		return fmt.Errorf("%w: %s=%w", ErrInvalidEnv, EnvMTU, err)
	}
	return nil
}

// Marshal renders the file. The keys come in a fixed order so that an unchanged Env yields the same
// bytes.
func (e *Env) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s=%s\n", EnvNetwork, e.Network)
	fmt.Fprintf(&b, "%s=%s\n", EnvSubnet, netip.PrefixFrom(e.Gateway(), e.Subnet.Bits()))
	fmt.Fprintf(&b, "%s=%d\n", EnvMTU, e.MTU)
	fmt.Fprintf(&b, "%s=%t\n", EnvIPMasq, e.IPMasq)
	fmt.Fprintf(&b, "%s=%t\n", EnvReady, e.Ready)
	if !e.LeaseExpiry.IsZero() {
		fmt.Fprintf(&b, "%s=%s\n", EnvExpiry, e.LeaseExpiry.UTC().Format(time.RFC3339))
	}
	return b.Bytes()
}

// ParseEnv parses and validates a subnet.env file. Blank lines and # comments are ignored, and so are
// keys this version does not know (a newer weftd or flannel may write more), but a known key given
// twice or with a bad value is an error naming it.
func ParseEnv(data []byte) (*Env, error) {
	var e Env
	seen := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: %q is not KEY=VALUE", ErrInvalidEnv, n, line)
		}
		if err := e.set(key, val); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidEnv, n, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: line %d: %s given twice", ErrInvalidEnv, n, key)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEnv, err)
	}
	for _, k := range []string{EnvNetwork, EnvSubnet, EnvMTU} {
		if !seen[k] {
			return nil, fmt.Errorf("%w: %s is missing", ErrInvalidEnv, k)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *Env) set(key, val string) error {
	var err error
	switch key {
	case EnvNetwork:
		e.Network, err = netip.ParsePrefix(val)
	case EnvSubnet:
		var p netip.Prefix
		p, err = netip.ParsePrefix(val)
		e.Subnet = p.Masked()
	case EnvMTU:
		e.MTU, err = strconv.Atoi(val)
	case EnvIPMasq:
		e.IPMasq, err = strconv.ParseBool(val)
	case EnvReady:
		e.Ready, err = strconv.ParseBool(val)
	case EnvExpiry:
		e.LeaseExpiry, err = time.Parse(time.RFC3339, val)
	}
	if err != nil {
		return fmt.Errorf("%s=%q: %w", key, val, err)
	}
	return nil
}

// ReadEnvFile reads and parses the subnet.env file at path. A missing file gives an error that
// satisfies errors.Is(err, fs.ErrNotExist).
func ReadEnvFile(path string) (*Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	e, err := ParseEnv(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// WriteEnvFile validates e and replaces the file at path atomically: readers see the old or the new
// content, never a mix. The directory is created when missing.
func WriteEnvFile(path string, e *Env) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return atomicfile.Write(path, e.Marshal(), 0o644)
}
