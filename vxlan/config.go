package vxlan

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/weft-net/weft/subnet"
)

// Defaults applied by Config.SetDefaults.
const (
	DefaultVNI            = 1
	DefaultPort           = 8472
	DefaultResyncInterval = 30 * time.Second
	DefaultDebounce       = 50 * time.Millisecond
	// DefaultRouteProtocol marks the routes weft owns (rtm_protocol). 87 is ASCII 'W'; it is not
	// assigned in iproute2's rt_protos list nor used by the common routing daemons (bird 12,
	// zebra 11, bgp 186, ospf 188, ...). `ip route show proto 87` lists weft's routes.
	DefaultRouteProtocol = 87
)

// Tx checksum offload modes for Config.TxChecksumOffload.
const (
	TxChecksumAuto = "auto"
	TxChecksumOn   = "on"
	TxChecksumOff  = "off"
)

const (
	maxVNI       = 1<<24 - 1
	maxIfNameLen = 15
)

// ErrInvalidConfig marks a Config that failed validation.
var ErrInvalidConfig = errors.New("invalid vxlan config")

// Config describes the VXLAN device and how peers are programmed.
type Config struct {
	// Device is the VXLAN link name. Default "weft.<VNI>".
	Device string
	// VNI is the VXLAN network identifier, 1..16777215. Default 1.
	VNI int
	// Port is the UDP destination port. Default 8472 (the Linux/flannel port, so weft and flannel
	// nodes with the same VNI interoperate during a migration).
	Port int
	// MTU of the device; 0 means the underlay link's MTU minus subnet.VXLANOverheadIPv4.
	MTU int
	// UnderlayLink names the link that carries VXLAN traffic, LocalIP the node's underlay IPv4
	// address (the local VTEP address); either may be left out, as FindUnderlay says.
	UnderlayLink string
	LocalIP      netip.Addr
	// Subnet is this node's pod CIDR; the device gets its network address as a /32.
	Subnet netip.Prefix
	// GBP enables VXLAN Group Based Policy extension.
	GBP bool
	// Learning enables source-address learning on the device (off: weft programs the FDB).
	Learning bool
	// DirectRouting routes peers whose public IP is on the underlay subnet directly via that IP
	// on the underlay link instead of through the tunnel.
	DirectRouting bool
	// TxChecksumOffload is "auto" (default: off only on kernels older than 5.7), "on" or "off".
	TxChecksumOffload string
	// StateDir is where the VTEP MAC is persisted (<StateDir>/<Device>.mac). At least one of
	// StateDir and NodeName is required so the MAC is stable.
	StateDir string
	// NodeName seeds the deterministic VTEP MAC when no persisted MAC exists.
	NodeName string
	// ResyncInterval is the period of the full resync. Default 30 s.
	ResyncInterval time.Duration
	// Debounce is how long kernel change events are collected before a reconcile. Default 50 ms.
	Debounce time.Duration
	// RouteProtocol is the rtm_protocol that marks routes owned by weft, 5..255. Default 87.
	RouteProtocol int
	// Logger receives the backend's logs. Default: discard.
	Logger *slog.Logger
}

// SetDefaults fills the zero fields that have defaults.
func (c *Config) SetDefaults() {
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.Device == "" {
		c.Device = DeviceName(c.VNI)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.TxChecksumOffload == "" {
		c.TxChecksumOffload = TxChecksumAuto
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.RouteProtocol == 0 {
		c.RouteProtocol = DefaultRouteProtocol
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field, each error naming the field and wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if err := validIfName(c.Device); err != nil {
		bad("Device", "%v", err)
	}
	if c.VNI < 1 || c.VNI > maxVNI {
		bad("VNI", "%d out of range 1..%d", c.VNI, maxVNI)
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("Port", "%d out of range 1..65535", c.Port)
	}
	if c.MTU != 0 {
		if err := subnet.CheckMTU(c.MTU); err != nil {
			bad("MTU", "%v, or 0 for the underlay's MTU minus %d", err, subnet.VXLANOverheadIPv4)
		}
	}
	if c.UnderlayLink != "" {
		if err := validIfName(c.UnderlayLink); err != nil {
			bad("UnderlayLink", "%v", err)
		}
	}
	if c.LocalIP.IsValid() {
		if err := subnet.CheckPublicIP(c.LocalIP); err != nil {
			bad("LocalIP", "%v", err)
		}
	}
	switch {
	case !c.Subnet.IsValid():
		bad("Subnet", "required")
	case !c.Subnet.Addr().Is4():
		bad("Subnet", "%s is not IPv4", c.Subnet)
	case c.Subnet.Bits() == 0:
		bad("Subnet", "%s covers every address", c.Subnet)
	case c.Subnet != c.Subnet.Masked():
		bad("Subnet", "%s has host bits set (want %s)", c.Subnet, c.Subnet.Masked())
	}
	if err := CheckTxChecksum(c.TxChecksumOffload); err != nil {
		bad("TxChecksumOffload", "%v", err)
	}
	if c.StateDir == "" && c.NodeName == "" {
		bad("StateDir", "required when NodeName is empty, or the VTEP MAC would change on restart")
	}
	if c.ResyncInterval <= 0 {
		bad("ResyncInterval", "%v is not positive", c.ResyncInterval)
	}
	if c.Debounce < 0 {
		bad("Debounce", "%v is negative", c.Debounce)
	}
	if err := CheckRouteProtocol(c.RouteProtocol); err != nil {
		bad("RouteProtocol", "%v", err)
	}
	return errors.Join(errs...)
}

// CheckTxChecksum checks a TxChecksumOffload mode.
func CheckTxChecksum(mode string) error {
	switch mode {
	case TxChecksumAuto, TxChecksumOn, TxChecksumOff:
		return nil
	}
	return fmt.Errorf("%q is not one of %s, %s, %s", mode, TxChecksumAuto, TxChecksumOn, TxChecksumOff)
}

// CheckRouteProtocol checks a route protocol number for weft's routes: 5 to 255, since 0 to 4 are
// the kernel's own.
func CheckRouteProtocol(p int) error {
	if p < 5 || p > 255 {
		return fmt.Errorf("%d out of range 5..255 (0..4 are the kernel's own)", p)
	}
	return nil
}

func validIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("%q longer than %d bytes", name, maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid link name", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("%q contains '/', ':', NUL or whitespace", name)
	}
	return nil
}
