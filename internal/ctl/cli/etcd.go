package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/weft-net/weft/internal/etcdclient"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// DefaultTimeout bounds each etcd request and connection attempt (-etcd-timeout).
const DefaultTimeout = 5 * time.Second

// PrefixFlags are -etcd-prefix and -flannel-compat, named and defaulted as weftd's.
type PrefixFlags struct {
	Prefix string
	compat *weftetcd.FlannelCompatFlag
}

// Register registers the flags on fs.
func (f *PrefixFlags) Register(fs *flag.FlagSet) {
	RegisterPrefix(fs, &f.Prefix)
	f.compat = weftetcd.RegisterFlannelCompatFlag(fs)
}

// FlannelCompat reports whether flannel nodes share the prefix, as weftd decides it.
func (f *PrefixFlags) FlannelCompat() bool { return f.compat.Resolve(f.Prefix) }

// EtcdFlags are the connection flags, named and defaulted as weftd's.
type EtcdFlags struct {
	PrefixFlags
	conn    etcdclient.Config
	timeout time.Duration
}

// Register registers the flags on fs.
func (f *EtcdFlags) Register(fs *flag.FlagSet) {
	f.conn.RegisterFlags(fs)
	f.PrefixFlags.Register(fs)
	fs.DurationVar(&f.timeout, "etcd-timeout", DefaultTimeout, "bound on each etcd request and connection attempt")
}

// RegisterPrefix registers -etcd-prefix on fs.
func RegisterPrefix(fs *flag.FlagSet, prefix *string) {
	fs.StringVar(prefix, "etcd-prefix", weftetcd.DefaultPrefix, "etcd key prefix; "+weftetcd.FlannelPrefix+" is a flannel cluster's")
}

// CheckPrefix validates a key prefix given with -flagName as the lease manager does.
func CheckPrefix(flagName, prefix string) error {
	o := weftetcd.Options{Prefix: prefix}
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: -%s=%q: want an absolute key path without a trailing slash, like %q", ErrUsage, flagName, prefix, weftetcd.DefaultPrefix)
	}
	return nil
}

// Config returns the connection settings the flags give.
func (f *EtcdFlags) Config() (etcdclient.Config, error) {
	c := f.conn
	c.DialTimeout = f.timeout
	if f.timeout <= 0 {
		return c, fmt.Errorf("%w: -etcd-timeout=%s: must be positive", ErrUsage, f.timeout)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return c, CheckPrefix("etcd-prefix", f.Prefix)
}

// Session is an open etcd connection and a lease manager on the prefix.
type Session struct {
	// M is the lease manager on Prefix.
	M      *weftetcd.Manager
	Prefix string
	// conns closes the connection.
	conns   io.Closer
	conn    etcdclient.Config
	timeout time.Duration
}

// Open connects to etcd lazily: a failed connection shows at the first request.
func (f *EtcdFlags) Open() (*Session, error) {
	conn, err := f.Config()
	if err != nil {
		return nil, err
	}
	cli, err := etcdclient.New(conn)
	if err != nil {
		return nil, err
	}
	m, err := weftetcd.New(cli, weftetcd.Options{Prefix: f.Prefix, FlannelCompat: f.FlannelCompat(), RequestTimeout: f.timeout})
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &Session{M: m, Prefix: f.Prefix, conns: cli, conn: conn, timeout: f.timeout}, nil
}

// Close closes the connection.
func (s *Session) Close() { s.conns.Close() }

// Do runs one etcd operation within the timeout. When etcd does not answer, the error says, per
// endpoint, what failed.
func (s *Session) Do(ctx context.Context, fn func(ctx context.Context) error) error {
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

// OpenCommand parses the command line of a command without arguments (its flags, ef's among them,
// registered on fs) and opens the etcd session.
func OpenCommand(env *Env, fs *flag.FlagSet, ef *EtcdFlags, args []string) (*Session, error) {
	if _, err := Parse(env, fs, args); err != nil {
		return nil, err
	}
	return ef.Open()
}
