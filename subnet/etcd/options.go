package etcd

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults applied by Options.SetDefaults.
const (
	// DefaultPrefix is weft's own key prefix. Flannel's is FlannelPrefix.
	DefaultPrefix = "/weft/network"
	// FlannelPrefix is flannel's key prefix. Under it, -flannel-compat is on unless turned off.
	FlannelPrefix         = "/coreos.com/network"
	DefaultTTL            = 24 * time.Hour
	DefaultCheckInterval  = 10 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultRetryMin       = 200 * time.Millisecond
	DefaultRetryMax       = 10 * time.Second
	DefaultCoalesce       = 100 * time.Millisecond
	// StateFileName is the name of the local state file inside Options.StateDir.
	StateFileName = "lease.json"
)

// Options configure a Manager. The zero value of every field means its default.
type Options struct {
	// Prefix is the etcd key prefix: the network config is <Prefix>/config and the leases are
	// <Prefix>/subnets/<subnet key>.
	Prefix string
	// FlannelCompat says that flannel nodes share the prefix: the network config must then also suit
	// them (subnet.Config.ValidateFlannelShared). FlannelCompatFlag sets it from -flannel-compat.
	FlannelCompat bool
	// NodeName identifies this node in the lease values it writes. Acquire needs it; the admin
	// operations do not.
	NodeName string
	// StateDir holds the local state file (StateFileName) recording the subnet and the etcd lease
	// this node last held, so that a restarted node gets them back. Empty: no local state.
	StateDir string
	// TTL of the etcd lease that keeps a subnet; a node that stops renewing loses its subnet after
	// it. Whole seconds, at least one.
	TTL time.Duration
	// CheckInterval is how often KeepAlive reads its own key besides watching it (the periodic
	// full check, which also measures whether etcd is reachable).
	CheckInterval time.Duration
	// RequestTimeout bounds each request that KeepAlive, Watch and WaitConfig make on their own, so
	// that an unreachable etcd is noticed and retried.
	RequestTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between retries while etcd is unreachable.
	RetryMin, RetryMax time.Duration
	// Coalesce is how long Watch gathers a burst of changes before it reports the new lease set.
	Coalesce time.Duration
	// Logger receives the manager's logs, with a "component" attribute added. Nil: no logs.
	Logger *slog.Logger
}

// SetDefaults fills the zero fields with their defaults.
func (o *Options) SetDefaults() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.Coalesce == 0 {
		o.Coalesce = DefaultCoalesce
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the options after SetDefaults; the error names the field and its value.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	switch {
	case !strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/") || strings.Contains(o.Prefix, "//"):
		return bad("Prefix=%q: want an absolute key path without a trailing slash, like %q", o.Prefix, DefaultPrefix)
	case strings.ContainsAny(o.NodeName, "\x00\n") || len(o.NodeName) > 253:
		return bad("NodeName=%q: not a node name (at most 253 characters, no NUL or newline)", o.NodeName)
	case o.TTL < time.Second || o.TTL%time.Second != 0:
		return bad("TTL=%s: must be a whole number of seconds, at least 1s", o.TTL)
	case o.CheckInterval < 0:
		return bad("CheckInterval=%s: negative", o.CheckInterval)
	case o.RequestTimeout < 0:
		return bad("RequestTimeout=%s: negative", o.RequestTimeout)
	case o.RetryMin < 0:
		return bad("RetryMin=%s: negative", o.RetryMin)
	case o.RetryMax < o.RetryMin:
		return bad("RetryMax=%s: below RetryMin=%s", o.RetryMax, o.RetryMin)
	case o.Coalesce < 0:
		return bad("Coalesce=%s: negative", o.Coalesce)
	}
	return nil
}
