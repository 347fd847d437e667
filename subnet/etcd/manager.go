// Package etcd keeps weft's subnet leases in etcd, in flannel's key layout: the network config at
// <prefix>/config and one key per node at <prefix>/subnets/10.244.7.0-24, attached to an etcd lease
// that the node keeps alive. A Manager acquires and renews this node's lease, watches everyone's, and
// offers the admin operations weftctl needs: reserve, reclaim, history, listing keys and etcd leases,
// storing the config guarded by its revision, and importing another prefix's keys.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weft-net/weft/internal/backoff"
	"github.com/weft-net/weft/subnet"
)

// Sentinel errors; every error the package returns for these conditions wraps one of them.
var (
	// ErrNoFreeSubnet: every allocatable subnet is taken (by a lease, a reservation or a key whose
	// value does not parse).
	ErrNoFreeSubnet = errors.New("no free subnet")
	// ErrLeaseLost: the node no longer holds its subnet (the etcd lease expired or was revoked, or the
	// key was deleted or taken over). The caller decides what to do; the library never exits.
	ErrLeaseLost = errors.New("subnet lease lost")
	// ErrNoConfig: the network config key does not exist.
	ErrNoConfig = errors.New("no network config")
	// ErrInvalidOptions: Options do not validate.
	ErrInvalidOptions = errors.New("invalid subnet/etcd options")
	// ErrInvalidSubnet: a subnet given to an admin operation is not one the network config hands out.
	ErrInvalidSubnet = errors.New("invalid subnet")
	// ErrSubnetInUse: an admin operation found the subnet held by another node.
	ErrSubnetInUse = errors.New("subnet in use")
	// ErrConfigChanged: StoreConfig found the network config written by someone else since it was
	// read.
	ErrConfigChanged = errors.New("network config changed meanwhile")
)

// Manager reads and writes subnet leases under one prefix. Its methods are safe for concurrent use.
type Manager struct {
	cli  *clientv3.Client
	opts Options
	log  *slog.Logger
	// reach is what the last telling request said of etcd: reachUnknown, reachUp or reachDown.
	reach atomic.Int32
	// expiry is when the last renewed etcd lease runs out unless renewed again (unix nanoseconds).
	expiry atomic.Int64
}

const (
	reachUnknown int32 = iota
	reachUp
	reachDown
)

// New returns a Manager using cli, which the caller keeps and closes.
func New(cli *clientv3.Client, opts Options) (*Manager, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil etcd client", ErrInvalidOptions)
	}
	opts.SetDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Manager{cli: cli, opts: opts, log: opts.Logger.With("component", "subnet/etcd")}, nil
}

// LeaseExpiry is when the etcd lease KeepAlive renews runs out unless renewed again, as of its last
// renewal; zero before the first renewal.
func (m *Manager) LeaseExpiry() time.Time {
	if ns := m.expiry.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Options returns the options in use, defaults filled in.
func (m *Manager) Options() Options { return m.opts }

// EtcdUp reports whether the last request that could tell succeeded: true once etcd answered,
// false after a request failed for want of a reachable etcd (for the weft_etcd_up metric).
// KeepAlive and Watch keep it current while they run.
func (m *Manager) EtcdUp() bool { return m.reach.Load() == reachUp }

// observe records what a request's outcome says about etcd's reachability, logging each change
// once.
func (m *Manager) observe(err error) {
	switch {
	case err == nil:
		if m.reach.Swap(reachUp) == reachDown {
			m.log.Info("etcd reachable again")
		}
	case Unreachable(err):
		if m.reach.Swap(reachDown) != reachDown {
			m.log.Warn("etcd unreachable", "err", err)
		}
	}
}

// logRetry logs a failed request that will be retried: at debug level when etcd is merely
// unreachable (observe logs that once), else as a warning.
func (m *Manager) logRetry(msg string, err error, args ...any) {
	level := slog.LevelWarn
	if Unreachable(err) {
		level = slog.LevelDebug
	}
	m.log.Log(context.Background(), level, msg, append(args, "err", err)...)
}

// Unreachable reports whether err says etcd did not answer (no connection, no leader, a timeout),
// as opposed to an answer that refused the request.
func Unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// The key layout under a prefix, flannel's: ConfigKey, then one key per subnet under SubnetsPrefix.

// ConfigKey is the key of the network config under prefix.
func ConfigKey(prefix string) string { return prefix + "/config" }

// SubnetsPrefix is the prefix of every lease key under prefix, with its trailing slash.
func SubnetsPrefix(prefix string) string { return prefix + "/subnets/" }

// SubnetKey is the lease key of s under prefix.
func SubnetKey(prefix string, s netip.Prefix) string {
	return SubnetsPrefix(prefix) + subnet.SubnetKey(s)
}

// ConfigKey is the key of the network config.
func (m *Manager) ConfigKey() string { return ConfigKey(m.opts.Prefix) }

// SubnetsPrefix is the prefix of every lease key, with its trailing slash.
func (m *Manager) SubnetsPrefix() string { return SubnetsPrefix(m.opts.Prefix) }

// SubnetKey is the lease key of s.
func (m *Manager) SubnetKey(s netip.Prefix) string { return SubnetKey(m.opts.Prefix, s) }

// reqCtx bounds one request made on the Manager's own initiative.
func (m *Manager) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.opts.RequestTimeout)
}

// readIdentity is what a value says about its holder; nothing for a value that is not JSON or has a
// field of the wrong type.
func readIdentity(value []byte) subnet.LeaseIdentity {
	id, err := subnet.ReadLeaseIdentity(value)
	if err != nil {
		return subnet.LeaseIdentity{}
	}
	return id
}

// sameAttrs reports whether two attribute sets describe the same node the same way, ignoring the
// version and acquisition time.
func sameAttrs(a, b *subnet.LeaseAttrs) bool {
	x, y := *a, *b
	x.AttrVersion, y.AttrVersion = 0, 0
	x.AcquiredAt, y.AcquiredAt = time.Time{}, time.Time{}
	return x.Equal(&y)
}

// nextAttrVersion is a version above prev, normally the current time in unix nanoseconds.
func nextAttrVersion(prev int64) int64 {
	return max(time.Now().UnixNano(), prev+1)
}

// newBackoff is the jittered retry delay between RetryMin and RetryMax.
func (m *Manager) newBackoff() *backoff.Backoff {
	return &backoff.Backoff{Min: m.opts.RetryMin, Max: m.opts.RetryMax, Jitter: true}
}

// keySubnet parses the subnet named by a key under SubnetsPrefix.
func (m *Manager) keySubnet(key string) (netip.Prefix, error) {
	name, ok := strings.CutPrefix(key, m.SubnetsPrefix())
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: key %q is not under %s", subnet.ErrInvalidLease, key, m.SubnetsPrefix())
	}
	return subnet.ParseSubnetKey(name)
}
