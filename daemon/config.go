package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	weftetcd "github.com/weft-net/weft/subnet/etcd"
	"github.com/weft-net/weft/vxlan"

	"github.com/weft-net/weft/internal/etcdclient"
	"github.com/weft-net/weft/internal/flagenv"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/subnet"
)

// ErrUsage marks invalid flags or flag values; weftd exits with code 2 on it.
var ErrUsage = errors.New("usage")

// Config is weftd's configuration, from flags or their WEFT_* environment variables.
type Config struct {
	Etcd       etcdclient.Config
	EtcdPrefix string
	// FlannelCompat says that flannel nodes share EtcdPrefix (-flannel-compat; by default whether
	// EtcdPrefix is flannel's).
	FlannelCompat bool

	NodeName string
	// Iface is the underlay interface; empty means the interface of the default route, or the one
	// that carries PublicIP.
	Iface    string
	PublicIP netip.Addr

	GossipBind    netip.AddrPort
	GossipKeyFile string
	// GossipInsecure allows gossip without a keyring (labs only).
	GossipInsecure bool
	GossipLabel    string
	Join           []string

	SubnetFile string
	StateDir   string
	IPMasq     bool
	HealthAddr string
	// ForwardPlacement is where the jump to weft's forward chain stays in the filter FORWARD chain.
	ForwardPlacement ForwardPlacement

	LeaseTTL          time.Duration
	ResyncInterval    time.Duration
	RulesInterval     time.Duration
	ProbeInterval     time.Duration
	DeviceName        string
	RouteProtocol     int
	MTU               int
	TxChecksumOffload string

	LogFormat string
	LogLevel  slog.Level
}

// Defaults.
const (
	DefaultStateDir = "/var/lib/weft"
)

// ParseFlags parses weftd's command line and WEFT_* environment. Any error wraps ErrUsage and names
// the flag.
func ParseFlags(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("weftd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var publicIP, gossipBind, join, logLevel string
	c.Etcd.RegisterFlags(fs)
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", weftetcd.DefaultPrefix, "etcd key prefix; "+weftetcd.FlannelPrefix+" shares a flannel cluster's config and leases")
	flannelCompat := weftetcd.RegisterFlannelCompatFlag(fs)
	fs.StringVar(&c.NodeName, "node-name", "", "node name (default: the host name)")
	fs.StringVar(&c.Iface, "iface", "", "underlay interface (default: the interface of the default route)")
	fs.StringVar(&publicIP, "public-ip", "", "underlay IPv4 address peers tunnel to (default: the first address of -iface)")
	fs.StringVar(&gossipBind, "gossip-bind", "", "gossip bind address ip:port (default: <public-ip>:7946)")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "gossip keyring file: one base64 AES key per line, the first is primary (required unless -gossip-insecure)")
	fs.BoolVar(&c.GossipInsecure, "gossip-insecure", false, "run gossip unencrypted without -gossip-key-file: anyone who reaches the gossip port can read it and speak (labs only)")
	fs.StringVar(&c.GossipLabel, "gossip-label", "weft", "gossip cluster label; nodes with another label are ignored")
	fs.StringVar(&join, "join", "", "comma-separated static gossip addresses to join, besides those in etcd")
	fs.StringVar(&c.SubnetFile, "subnet-file", subnet.DefaultEnvFile, "subnet.env file written for the CNI plugin")
	fs.StringVar(&c.StateDir, "state-dir", DefaultStateDir, "directory for local state (lease, VTEP MAC)")
	fs.BoolVar(&c.IPMasq, "ip-masq", true, "masquerade traffic from pods to outside the pod network")
	fs.StringVar((*string)(&c.ForwardPlacement), "forward-placement", string(DefaultForwardPlacement), "where weft's jump stays in the filter FORWARD chain: first (ahead of the host firewall's rules) or append (after them)")
	fs.StringVar(&c.HealthAddr, "health-addr", nodeapi.DefaultHealthAddr, "listen address for /healthz, /readyz, /metrics and /debug/peers; empty disables")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", weftetcd.DefaultTTL, "etcd lease TTL of the node's subnet")
	fs.DurationVar(&c.ResyncInterval, "resync-interval", vxlan.DefaultResyncInterval, "full kernel-state resync period")
	fs.DurationVar(&c.RulesInterval, "rules-interval", 10*time.Second, "iptables rules check period")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", 5*time.Second, "data-plane probe period per peer; 0 disables")
	fs.StringVar(&c.DeviceName, "device", "", "VXLAN device name (default weft.<VNI>)")
	fs.IntVar(&c.RouteProtocol, "route-protocol", vxlan.DefaultRouteProtocol, "route protocol number marking weft's routes (5-255; `ip route show proto N` lists them)")
	fs.IntVar(&c.MTU, "mtu", 0, "VXLAN device MTU (default: network config's Backend.MTU, else underlay MTU - 50)")
	fs.StringVar(&c.TxChecksumOffload, "tx-checksum-offload", vxlan.TxChecksumAuto, "VXLAN device TX checksum offload: auto, on or off")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	bad := func(flagName, val, why string) error {
		return fmt.Errorf("%w: -%s=%q: %s", ErrUsage, flagName, val, why)
	}
	c.FlannelCompat = flannelCompat.Resolve(c.EtcdPrefix)
	c.Join = flagenv.SplitList(join)
	if publicIP != "" {
		a, err := netip.ParseAddr(publicIP)
		if err != nil || !a.Is4() {
			return nil, bad("public-ip", publicIP, "not an IPv4 address")
		}
		c.PublicIP = a
	}
	if gossipBind != "" {
		ap, err := netip.ParseAddrPort(gossipBind)
		if err != nil {
			return nil, bad("gossip-bind", gossipBind, "want ip:port")
		}
		c.GossipBind = ap
	}
	if err := c.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, bad("log-level", logLevel, "want debug, info, warn or error")
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("%w: -node-name not given and the host name is unknown: %w", ErrUsage, err)
		}
		c.NodeName = h
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the values that flag parsing alone does not.
func (c *Config) Validate() error {
	bad := func(flagName string, val any, why string) error {
		return fmt.Errorf("%w: -%s=%q: %s", ErrUsage, flagName, fmt.Sprint(val), why)
	}
	if err := c.Etcd.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	switch {
	case !strings.HasPrefix(c.EtcdPrefix, "/") || strings.HasSuffix(c.EtcdPrefix, "/"):
		return bad("etcd-prefix", c.EtcdPrefix, "must start with / and not end with /")
	case c.NodeName == "" || len(c.NodeName) > 253 || strings.ContainsAny(c.NodeName, " \t\n/"):
		return bad("node-name", c.NodeName, "not a valid node name")
	case c.SubnetFile == "":
		return bad("subnet-file", "", "must not be empty")
	case c.StateDir == "":
		return bad("state-dir", "", "must not be empty")
	case c.LeaseTTL < 10*time.Second || c.LeaseTTL%time.Second != 0:
		return bad("lease-ttl", c.LeaseTTL, "must be whole seconds, at least 10s")
	case c.ResyncInterval < time.Second:
		return bad("resync-interval", c.ResyncInterval, "must be at least 1s")
	case c.RulesInterval < time.Second:
		return bad("rules-interval", c.RulesInterval, "must be at least 1s")
	case c.ProbeInterval < 0:
		return bad("probe-interval", c.ProbeInterval, "must not be negative")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return bad("log-format", c.LogFormat, "want text or json")

	}
	if err := c.ForwardPlacement.Check(); err != nil {
		return bad("forward-placement", c.ForwardPlacement, err.Error())
	}
	if err := vxlan.CheckTxChecksum(c.TxChecksumOffload); err != nil {
		return bad("tx-checksum-offload", c.TxChecksumOffload, err.Error())
	}
	if err := vxlan.CheckRouteProtocol(c.RouteProtocol); err != nil {
		return bad("route-protocol", c.RouteProtocol, err.Error())
	}
	if c.MTU != 0 {
		if err := subnet.CheckMTU(c.MTU); err != nil {
			return bad("mtu", c.MTU, err.Error()+", or 0 for automatic")
		}
	}
	if c.GossipKeyFile == "" && !c.GossipInsecure {
		return bad("gossip-key-file", "", "required: gossip is encrypted unless -gossip-insecure is given (labs only)")
	}
	return nil
}

// Logger builds the daemon's logger from the config.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
