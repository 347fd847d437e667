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
	// Endpoints are the client URLs (http://host:port or https://host:port; a bare host:port is
	// plain http).
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
// setting at fault (RegisterFlags).
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("%w: -etcd-endpoints: at least one endpoint is needed", ErrInvalidConfig)
	}
	for _, ep := range c.Endpoints {
		if _, err := hostPort(ep); err != nil {
			return fmt.Errorf("%w: -etcd-endpoints: %w", ErrInvalidConfig, err)
		}
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("%w: -etcd-cert=%q, -etcd-key=%q: a client certificate and its key go together", ErrInvalidConfig, c.CertFile, c.KeyFile)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: DialTimeout=%s: negative", ErrInvalidConfig, c.DialTimeout)
	}
	return nil
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout == 0 {
		return DefaultDialTimeout
	}
	return c.DialTimeout
}

// tlsConfig returns the client TLS config, or nil when no TLS file is given.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if c.CertFile == "" && c.CAFile == "" {
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
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: cfg.dialTimeout(),
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		Username: cfg.Username, Password: cfg.Password, TLS: t,
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return cli, nil
}

// hostPort returns the host:port an endpoint dials.
func hostPort(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q: not a URL", endpoint)
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs":
		return "", fmt.Errorf("%q: scheme %q: want http or https", endpoint, u.Scheme)
	case u.Scheme == "unix" || u.Scheme == "unixs":
		return "", nil
	case u.Hostname() == "" || u.Port() == "":
		return "", fmt.Errorf("%q: want scheme://host:port", endpoint)
	}
	return u.Host, nil
}

// Diagnose tries each endpoint in turn — a TCP connection, the TLS handshake when the endpoint is
// https, then etcd's status request — and returns an error wrapping ErrUnreachable that names every
// endpoint and what failed there, or nil when one of them answers.
func Diagnose(ctx context.Context, cfg Config) error {
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
	hp, err := hostPort(ep)
	if err != nil {
		return err
	}
	if hp != "" {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hp)
		if err != nil {
			return err
		}
		defer conn.Close()
		if strings.HasPrefix(ep, "https://") {
			tc := &tls.Config{}
			if t != nil {
				tc = t.Clone()
			}
			if tc.ServerName == "" {
				tc.ServerName, _, _ = net.SplitHostPort(hp)
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
	if _, err := cli.Status(ctx, ep); err != nil {
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
