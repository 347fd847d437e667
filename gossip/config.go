package gossip

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Config configures a Member.
//
// The timing defaults (DefaultConfig) are tuned for a LAN or datacenter underlay with sub-millisecond
// round trips, where detecting a failed node within a few seconds matters more than a few packets a
// second per node:
//
//   - ProbeInterval 500ms, ProbeTimeout 200ms: each member probes one other member (round robin)
//     every 500ms and expects the ack within 200ms before asking IndirectChecks (3) members to probe
//     for it; memberlist's default LAN values are 1s and 500ms.
//   - SuspicionMult 4, SuspicionMaxTimeoutMult 4: a suspect is declared dead after
//     SuspicionMult × max(1, log10(N)) × ProbeInterval (2s up to 10 nodes, 3.4s at 50, 4s at 100,
//     6s at 1000). The timeout starts at SuspicionMaxTimeoutMult times that and shrinks to it as
//     independent members confirm the suspicion. A stopped node is therefore detected within
//     roughly 3 to 6 seconds.
//   - GossipInterval 50ms, GossipNodes 4, RetransmitMult 6: queued updates (joins, meta changes,
//     failures) are sent to 4 random members every 50ms, and each member relays an update to
//     RetransmitMult × ceil(log10(N+1)) random members (12 in a 50-node cluster), so news reaches
//     every member of a 50-node cluster in about 125ms (median, see docs/gossip.md).
//     With memberlist's default multiplier of 4, a given member misses about one update in 4000
//     at 50 nodes (it learns it at the next push/pull); with 6, about one in 200000.
//     Nothing is sent when no update is queued; memberlist's LAN default is 200ms and 3 members.
//   - PushPullInterval 15s: full state exchange with one random member (memberlist scales the
//     interval up beyond 32 members); it repairs anything gossip missed.
//   - GossipToTheDeadTime 15s: failed members still receive gossip for this long, so a member that
//     was wrongly declared dead learns it and refutes.
//   - DeadNodeReclaimTime 10s: a name whose member failed at least this long ago may come back from
//     a new address (a rebuilt node keeps its name but gets a new IP). Left members can come back
//     at once.
//   - TCPTimeout 3s: limit for TCP connections (joins, push/pull, fallback probes).
//   - JoinRetryInterval 5s: while the member is alone, it retries joining this often.
//   - BroadcastTimeout 2s: how long Run waits for its leave broadcast to go out when it stops, and
//     the meta updater for a meta broadcast before it takes the next change.
type Config struct {
	// NodeName is the member name, the node's name (unique in the cluster).
	NodeName string
	// BindAddr is the IPv4 address memberlist listens on (TCP and UDP); 0.0.0.0 for all.
	BindAddr netip.Addr
	// BindPort is the TCP and UDP port memberlist listens on.
	BindPort int
	// AdvertiseAddr is the address other members reach this one at, with BindPort. Optional when
	// BindAddr is a specific address, required when it is 0.0.0.0.
	AdvertiseAddr netip.Addr
	// KeyFile holds the encryption keys, one base64-encoded AES key (16, 24 or 32 bytes) per line;
	// the first is the primary key, which encrypts, and the others only decrypt. Blank lines and
	// lines starting with '#' are ignored. Empty runs without encryption (a warning is logged).
	KeyFile string
	// Label is the cluster label; members with a different label ignore each other. At most 255
	// bytes.
	Label string
	// Join lists static "host:port" addresses to join, in addition to the ones JoinAddrs supplies.
	Join []string
	// NodeKey, when set, signs the member's meta (Meta.Sign) for its advertised address, so that
	// peers can check it against the key in the node's lease; nil advertises unsigned meta.
	NodeKey ed25519.PrivateKey
	// Admit decides which other members are let in; nil admits every member (tests, tools).
	Admit Admitter
	// SkipLeave makes Run stop without broadcasting a leave, as if the node had crashed; for
	// restarts that come back within seconds, where peers would otherwise see a leave and a
	// rejoin.
	SkipLeave bool

	// Timings, documented above.
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	IndirectChecks          int
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	GossipInterval          time.Duration
	GossipNodes             int
	RetransmitMult          int
	PushPullInterval        time.Duration
	GossipToTheDeadTime     time.Duration
	DeadNodeReclaimTime     time.Duration
	TCPTimeout              time.Duration
	JoinRetryInterval       time.Duration
	BroadcastTimeout        time.Duration

	// Logger receives the member's logs, memberlist's own at debug level; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults for Config, see its doc comment.
const (
	DefaultBindPort = 7946
	// maxLabelLen is memberlist's limit.
	maxLabelLen = 255
)

// DefaultConfig returns a Config with the LAN timings and the default port, bound to all addresses.
// NodeName and AdvertiseAddr are left for the caller.
func DefaultConfig() Config {
	return Config{
		BindAddr:                netip.IPv4Unspecified(),
		BindPort:                DefaultBindPort,
		ProbeInterval:           500 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 4,
		GossipInterval:          50 * time.Millisecond,
		GossipNodes:             4,
		RetransmitMult:          6,
		PushPullInterval:        15 * time.Second,
		GossipToTheDeadTime:     15 * time.Second,
		DeadNodeReclaimTime:     10 * time.Second,
		TCPTimeout:              3 * time.Second,
		JoinRetryInterval:       5 * time.Second,
		BroadcastTimeout:        2 * time.Second,
	}
}

// Validate checks the config, naming the field at fault.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.NodeName == "":
		return bad("NodeName is empty")
	case len(c.NodeName) > MaxNodeNameLen || !validNodeName(c.NodeName):
		return bad("NodeName=%q: want printable UTF-8 of at most %d bytes", c.NodeName, MaxNodeNameLen)
	case !c.BindAddr.IsValid() || !c.BindAddr.Is4():
		return bad("BindAddr=%s: want an IPv4 address", addrString(c.BindAddr))
	case c.BindPort < 1 || c.BindPort > 65535:
		return bad("BindPort=%d: must be between 1 and 65535", c.BindPort)
	case c.AdvertiseAddr.IsValid() && (!c.AdvertiseAddr.Is4() || c.AdvertiseAddr.IsUnspecified() || c.AdvertiseAddr.IsMulticast()):
		return bad("AdvertiseAddr=%s: want a unicast IPv4 address", c.AdvertiseAddr)
	case !c.AdvertiseAddr.IsValid() && c.BindAddr.IsUnspecified():
		return bad("AdvertiseAddr is required when BindAddr is %s", c.BindAddr)
	case len(c.Label) > maxLabelLen:
		return bad("Label is %d bytes long, the limit is %d", len(c.Label), maxLabelLen)
	}
	for i, j := range c.Join {
		host, port, err := net.SplitHostPort(j)
		if err != nil || host == "" {
			return bad("Join[%d]=%q: want host:port", i, j)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return bad("Join[%d]=%q: port must be between 1 and 65535", i, j)
		}
	}
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval},
		{"GossipToTheDeadTime", c.GossipToTheDeadTime}, {"DeadNodeReclaimTime", c.DeadNodeReclaimTime},
		{"TCPTimeout", c.TCPTimeout}, {"JoinRetryInterval", c.JoinRetryInterval},
		{"BroadcastTimeout", c.BroadcastTimeout},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return bad("%s=%s: must be positive", d.name, d.d)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return bad("ProbeTimeout=%s: must be shorter than ProbeInterval=%s", c.ProbeTimeout, c.ProbeInterval)
	}
	counts := []struct {
		name string
		n    int
	}{
		{"IndirectChecks", c.IndirectChecks}, {"SuspicionMult", c.SuspicionMult},
		{"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult}, {"GossipNodes", c.GossipNodes},
		{"RetransmitMult", c.RetransmitMult},
	}
	for _, n := range counts {
		if n.n < 1 {
			return bad("%s=%d: must be at least 1", n.name, n.n)
		}
	}
	return nil
}

// Advertise returns the address other members reach this one at: AdvertiseAddr, or BindAddr when
// that is a specific address, with BindPort. It is what the daemon writes into its lease.
func (c *Config) Advertise() netip.AddrPort {
	a := c.AdvertiseAddr
	if !a.IsValid() {
		a = c.BindAddr
	}
	return netip.AddrPortFrom(a, uint16(c.BindPort))
}
