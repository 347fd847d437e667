package ctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/weft-net/weft/internal/etcdclient"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// DefaultTimeout bounds each etcd request and connection attempt (-etcd-timeout).
const DefaultTimeout = 5 * time.Second

// prefixFlags are -etcd-prefix and -flannel-compat, named and defaulted as weftd's.
type prefixFlags struct {
	prefix string
	compat *weftetcd.FlannelCompatFlag
}

func (f *prefixFlags) register(fs *flag.FlagSet) {
	registerPrefix(fs, &f.prefix)
	f.compat = weftetcd.RegisterFlannelCompatFlag(fs)
}

// flannelCompat reports whether flannel nodes share the prefix, as weftd decides it.
func (f *prefixFlags) flannelCompat() bool { return f.compat.Resolve(f.prefix) }

// etcdFlags are the connection flags, named and defaulted as weftd's.
type etcdFlags struct {
	prefixFlags
	conn    etcdclient.Config
	timeout time.Duration
}

func (f *etcdFlags) register(fs *flag.FlagSet) {
	f.conn.RegisterFlags(fs)
	f.prefixFlags.register(fs)
	fs.DurationVar(&f.timeout, "etcd-timeout", DefaultTimeout, "bound on each etcd request and connection attempt")
}

func registerPrefix(fs *flag.FlagSet, prefix *string) {
	fs.StringVar(prefix, "etcd-prefix", weftetcd.DefaultPrefix, "etcd key prefix; "+weftetcd.FlannelPrefix+" is a flannel cluster's")
}

// checkPrefix validates a key prefix given with -flagName as the lease manager does.
func checkPrefix(flagName, prefix string) error {
	o := weftetcd.Options{Prefix: prefix}
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: -%s=%q: want an absolute key path without a trailing slash, like %q", ErrUsage, flagName, prefix, weftetcd.DefaultPrefix)
	}
	return nil
}

// config returns the connection settings the flags give.
func (f *etcdFlags) config() (etcdclient.Config, error) {
	c := f.conn
	c.DialTimeout = f.timeout
	if f.timeout <= 0 {
		return c, fmt.Errorf("%w: -etcd-timeout=%s: must be positive", ErrUsage, f.timeout)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return c, checkPrefix("etcd-prefix", f.prefix)
}

// session is an open etcd connection and a lease manager on the prefix.
type session struct {
	// conns closes the connection.
	conns   io.Closer
	m       *weftetcd.Manager
	conn    etcdclient.Config
	prefix  string
	timeout time.Duration
}

// open connects to etcd lazily: a failed connection shows at the first request.
func (f *etcdFlags) open() (*session, error) {
	conn, err := f.config()
	if err != nil {
		return nil, err
	}
	cli, err := etcdclient.New(conn)
	if err != nil {
		return nil, err
	}
	m, err := weftetcd.New(cli, weftetcd.Options{Prefix: f.prefix, FlannelCompat: f.flannelCompat(), RequestTimeout: f.timeout})
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &session{conns: cli, m: m, conn: conn, prefix: f.prefix, timeout: f.timeout}, nil
}

func (s *session) close() { s.conns.Close() }

// do runs one etcd operation within the timeout. When etcd does not answer, the error says, per
// endpoint, what failed.
func (s *session) do(ctx context.Context, fn func(ctx context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := fn(rctx)
	if err == nil || ctx.Err() != nil || !weftetcd.Unreachable(err) {
		return err
	}
	if derr := etcdclient.Diagnose(ctx, s.conn); derr != nil {
		return fmt.Errorf("%w (%v)", derr, err)
	}
	return fmt.Errorf("%w: etcd accepts connections but did not complete the request within %s: %w", etcdclient.ErrUnreachable, s.timeout, err)
}

// openCommand parses the command line of a command without arguments (its flags, ef's among them,
// registered on fs) and opens the etcd session.
func openCommand(env *Env, fs *flag.FlagSet, ef *etcdFlags, args []string) (*session, error) {
	if _, err := parse(env, fs, args); err != nil {
		return nil, err
	}
	return ef.open()
}

// subnetCommand parses the command line of a command whose one argument is SUBNET (its flags, ef's
// among them, registered on fs) and opens the etcd session.
func subnetCommand(env *Env, fs *flag.FlagSet, ef *etcdFlags, args []string) (netip.Prefix, *session, error) {
	pos, err := parse(env, fs, args, "SUBNET")
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	sn, err := parseSubnetArg(pos[0])
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	s, err := ef.open()
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	return sn, s, nil
}

// keysFor returns the keys under the subnets prefix that name subnet sn.
func (s *session) keysFor(ctx context.Context, sn netip.Prefix) ([]keyEntry, error) {
	entries, _, err := s.readKeys(ctx)
	if err != nil {
		return nil, err
	}
	var found []keyEntry
	for _, e := range entries {
		if e.Subnet == sn {
			found = append(found, e)
		}
	}
	return found, nil
}
