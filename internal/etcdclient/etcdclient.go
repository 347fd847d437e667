// Package etcdclient builds the etcd client that weftd and weftctl connect with, from the same
// connection settings (endpoints, TLS files, user name and password), and explains per endpoint why
// etcd cannot be reached.
package etcdclient

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Sentinel errors.
var (
	// ErrInvalidConfig marks connection settings that cannot work.
	ErrInvalidConfig = errors.New("invalid etcd connection settings")
	// ErrUnreachable marks an etcd that did not answer; the error says what failed per endpoint.
	ErrUnreachable = errors.New("etcd unreachable")
)

// DefaultDialTimeout bounds each connection attempt when Config.DialTimeout is zero.
const DefaultDialTimeout = 5 * time.Second

// Config holds the connection settings of weftd's and weftctl's -etcd-* flags.
type Config struct {
	// Endpoints are the client URLs: http://host:port, https://host:port, unix:// or unixs:// sockets,
	// or a bare host:port, which is https when a TLS file is given and http otherwise (as etcdctl
	// has it; see endpointURL).
	Endpoints []string
	// CertFile and KeyFile are a client certificate and its key, given together.
	CertFile, KeyFile string
	// CAFile is the CA that signed the servers' certificates.
	CAFile string
	// Username and Password authenticate with etcd's auth.
	Username, Password string
	// DialTimeout bounds each connection attempt. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Validate checks the settings, for weftd and weftctl alike; the error names the flag of the
// setting at fault (RegisterFlags). TLS files or a password with a plaintext endpoint are refused:
// etcd's client would ignore the files, or send the password in clear.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("%w: -etcd-endpoints: at least one endpoint is needed", ErrInvalidConfig)
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("%w: -etcd-cert=%q, -etcd-key=%q: a client certificate and its key go together", ErrInvalidConfig, c.CertFile, c.KeyFile)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: DialTimeout=%s: negative", ErrInvalidConfig, c.DialTimeout)
	}
	urls, err := c.urls()
	if err != nil {
		return err
	}
	for _, u := range urls {
		if err := c.checkTransport(u); err != nil {
			return err
		}
		// etcd's client takes the first endpoint's transport for all of them.
		if c.secure(u) != c.secure(urls[0]) {
			return fmt.Errorf("%w: -etcd-endpoints: %s and %s: all endpoints must use TLS or none", ErrInvalidConfig, urls[0], u)
		}
	}
	return nil
}

// checkTransport refuses TLS files or a password with an endpoint that carries them in plaintext.
func (c *Config) checkTransport(u *url.URL) error {
	switch {
	case u.Scheme != "http":
		// https and unixs are TLS; unix is TLS when a file is given, and a password on a local
		// socket never crosses the network.
		return nil
	case c.usesTLS():
		return fmt.Errorf("%w: %s given but endpoint %s is plaintext and would not use TLS; use https://%s", ErrInvalidConfig, strings.Join(c.tlsFlags(), ", "), u, u.Host)
	case c.Password != "":
		return fmt.Errorf("%w: -etcd-password is set but endpoint %s is plaintext and would send it in clear; use https://%s", ErrInvalidConfig, u, u.Host)
	}
	return nil
}

// tlsFlags names the TLS file flags that are set.
func (c *Config) tlsFlags() []string {
	var set []string
	for _, f := range []struct{ name, val string }{{"-etcd-cert", c.CertFile}, {"-etcd-key", c.KeyFile}, {"-etcd-ca", c.CAFile}} {
		if f.val != "" {
			set = append(set, f.name)
		}
	}
	return set
}

// usesTLS reports whether a TLS file is given.
func (c *Config) usesTLS() bool { return len(c.tlsFlags()) > 0 }

// endpointURL parses an endpoint, giving a bare host:port the scheme it is dialled with: https
// when a TLS file (-etcd-cert, -etcd-key, -etcd-ca) is given, as etcdctl does, and http otherwise.
// It is the one place that decides an endpoint's scheme. The error names the endpoint.
func (c *Config) endpointURL(endpoint string) (*url.URL, error) {
	s := endpoint
	if !strings.Contains(s, "://") {
		scheme := "http://"
		if c.usesTLS() {
			scheme = "https://"
		}
		s = scheme + s
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q: not a URL", endpoint)
	case u.Scheme == "unix" || u.Scheme == "unixs":
		return u, nil
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: scheme %q: want http or https", endpoint, u.Scheme)
	case u.Hostname() == "" || u.Port() == "":
		return nil, fmt.Errorf("%q: want scheme://host:port", endpoint)
	}
	return u, nil
}

// secure reports whether an endpoint's transport is TLS: https and unixs always, unix when a TLS
// file is given (etcd's client uses TLS there if it has a TLS config).
func (c *Config) secure(u *url.URL) bool {
	return u.Scheme == "https" || u.Scheme == "unixs" || (u.Scheme == "unix" && c.usesTLS())
}

// urls returns every endpoint's URL; the error names the flag and the endpoint at fault.
func (c *Config) urls() ([]*url.URL, error) {
	out := make([]*url.URL, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		u, err := c.endpointURL(ep)
		if err != nil {
			return nil, fmt.Errorf("%w: -etcd-endpoints: %w", ErrInvalidConfig, err)
		}
		out[i] = u
	}
	return out, nil
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout == 0 {
		return DefaultDialTimeout
	}
	return c.DialTimeout
}

// tlsConfig returns the client TLS config, or nil when no TLS file is given.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if !c.usesTLS() {
		return nil, nil
	}
	t, err := (transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.CAFile}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return t, nil
}

// New validates cfg and returns a client. It does not wait for a connection: the first request
// fails when etcd cannot be reached, and Diagnose then tells why.
func New(cfg Config) (*clientv3.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	urls, err := cfg.urls()
	if err != nil {
		return nil, err
	}
	// The endpoints go with their schemes spelled out, so that the client's transport is the one
	// Validate checked.
	endpoints := make([]string, len(urls))
	for i, u := range urls {
		endpoints[i] = u.String()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: cfg.dialTimeout(),
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		Username: cfg.Username, Password: cfg.Password, TLS: t,
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// Diagnose tries each endpoint in turn — a TCP connection, the TLS handshake when the endpoint is
// https, then etcd's status request — and returns an error wrapping ErrUnreachable that names every
// endpoint and what failed there, or nil when one of them answers. Invalid settings are refused
// before any connection, with an error wrapping ErrUnreachable and ErrInvalidConfig.
func Diagnose(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	t, err := cfg.tlsConfig()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	var problems []string
	for _, ep := range cfg.Endpoints {
		err := probe(ctx, cfg, t, ep)
		if err == nil {
			return nil
		}
		problems = append(problems, fmt.Sprintf("%s: %v", ep, err))
	}
	return fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(problems, "; "))
}

func probe(ctx context.Context, cfg Config, t *tls.Config, ep string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout())
	defer cancel()
	u, err := cfg.endpointURL(ep)
	if err != nil {
		return err
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return err
		}
		defer conn.Close()
		if u.Scheme == "https" {
			tc := &tls.Config{}
			if t != nil {
				tc = t.Clone()
			}
			if tc.ServerName == "" {
				tc.ServerName = u.Hostname()
			}
			if err := tls.Client(conn, tc).HandshakeContext(ctx); err != nil {
				return fmt.Errorf("TLS handshake: %w", err)
			}
		}
	}
	one := cfg
	one.Endpoints = []string{ep}
	cli, err := New(one)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Status(ctx, u.String()); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("connected, but etcd sent no status within %s (not etcd, no TLS where TLS is expected, or overloaded)", cfg.dialTimeout())
		}
		return fmt.Errorf("status request: %w", err)
	}
	return nil
}

// DefaultEndpoint is the -etcd-endpoints default.
const DefaultEndpoint = "http://127.0.0.1:2379"

// RegisterFlags registers weft's etcd connection flags on fs, writing into c: -etcd-endpoints
// (comma-separated, default DefaultEndpoint), -etcd-cert, -etcd-key, -etcd-ca, -etcd-username and
// -etcd-password. weftd and weftctl both call it, so their flags and WEFT_* variables agree.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Endpoints = []string{DefaultEndpoint}
	fs.Var((*endpointList)(&c.Endpoints), "etcd-endpoints", "comma-separated etcd client URLs")
	fs.StringVar(&c.CertFile, "etcd-cert", "", "etcd client TLS certificate file")
	fs.StringVar(&c.KeyFile, "etcd-key", "", "etcd client TLS key file")
	fs.StringVar(&c.CAFile, "etcd-ca", "", "etcd server CA file")
	fs.StringVar(&c.Username, "etcd-username", "", "etcd username")
	fs.StringVar(&c.Password, "etcd-password", "", "etcd password (prefer WEFT_ETCD_PASSWORD)")
}

// endpointList is a comma-separated list flag; blank items are dropped.
type endpointList []string

func (l *endpointList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *endpointList) Set(s string) error {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	*l = out
	return nil
}
