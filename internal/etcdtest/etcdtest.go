// Package etcdtest runs a real etcd server inside a test process, for the tests of every package that
// talks to etcd. The server listens on random loopback ports and keeps its data in a temporary
// directory; it can be stopped and restarted on the same ports and data (an etcd outage) and
// compacted. Start it once per package, in TestMain.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// StartTimeout bounds how long Start and Restart wait for the server to be ready.
const StartTimeout = 60 * time.Second

// ErrNotRunning is returned by Stop when the server is already stopped.
var ErrNotRunning = errors.New("etcd test server is not running")

// Server is an embedded single-member etcd cluster.
type Server struct {
	dir       string
	clientURL url.URL
	peerURL   url.URL
	client    *clientv3.Client
	mu        sync.Mutex
	etcd      *embed.Etcd
	// closers are the clients and proxies handed out, closed by Close.
	closersMu sync.Mutex
	closers   []func() error
}

// Start starts a server on two free loopback ports (client and peer) with a fresh data directory,
// and a client connected to it. Close releases both.
func Start() (*Server, error) {
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, err
	}
	// A port picked free can be taken by another process before etcd binds it: try a few pairs.
	var errs []error
	for range 5 {
		s := &Server{dir: dir}
		if s.clientURL, s.peerURL, err = freeURLs(); err != nil {
			errs = append(errs, err)
			continue
		}
		if err = s.start(); err != nil {
			errs = append(errs, err)
			os.RemoveAll(dir)
			if dir, err = os.MkdirTemp("", "etcdtest-"); err != nil {
				return nil, errors.Join(append(errs, err)...)
			}
			continue
		}
		if s.client, err = s.NewClient(); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("starting embedded etcd: %w", errors.Join(errs...))
}

func freeURLs() (client, peer url.URL, err error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return url.URL{}, url.URL{}, err
		}
		ls = append(ls, l)
	}
	return url.URL{Scheme: "http", Host: ls[0].Addr().String()},
		url.URL{Scheme: "http", Host: ls[1].Addr().String()}, nil
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A single member elects itself after one election timeout: keep it short so that a start or a
	// restart takes a fraction of a second.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietLogger())
	cfg.EnableGRPCGateway = false
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-time.After(StartTimeout):
		e.Close()
		return fmt.Errorf("embedded etcd not ready after %s", StartTimeout)
	}
	s.mu.Lock()
	s.etcd = e
	s.mu.Unlock()
	return nil
}

// benign are the messages etcd logs at error level on an orderly start or stop.
var benign = map[string]bool{
	"setting up serving from embedded etcd failed.": true,
	"failed to update storage version":              true,
}

// quietLogger logs etcd's errors, without stack traces, to stderr, except the benign ones.
func quietLogger() *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
	return zap.New(filterCore{core})
}

// filterCore drops the benign messages.
type filterCore struct{ zapcore.Core }

func (c filterCore) With(fields []zapcore.Field) zapcore.Core { return filterCore{c.Core.With(fields)} }

func (c filterCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if benign[e.Message] {
		return ce
	}
	return c.Core.Check(e, ce)
}

// Endpoints are the client URLs to dial.
func (s *Server) Endpoints() []string { return []string{s.clientURL.String()} }

// Client is a client shared by the tests; Close closes it. It reconnects by itself after Restart.
func (s *Server) Client() *clientv3.Client { return s.client }

// NewClient returns a new client with its own connection, logging nothing and reconnecting within
// a second of the server coming back. Close closes it at the latest.
func (s *Server) NewClient() (*clientv3.Client, error) { return s.newClient(s.Endpoints()) }

func (s *Server) newClient(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, err
	}
	s.addCloser(c.Close)
	return c, nil
}

func (s *Server) addCloser(f func() error) {
	s.closersMu.Lock()
	s.closers = append(s.closers, f)
	s.closersMu.Unlock()
}

// Running reports whether the server is up (between Start or Restart and Stop).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd != nil
}

// Stop stops the server and keeps its ports and data for Restart. Clients stay open and retry. etcd
// stops gracefully: while clients hold streams (watches, lease keep-alives) this takes etcd's request
// timeout, about five seconds. For a quicker partition of some clients, use a Proxy.
func (s *Server) Stop() error {
	s.mu.Lock()
	e := s.etcd
	s.etcd = nil
	s.mu.Unlock()
	if e == nil {
		return ErrNotRunning
	}
	e.Close()
	return nil
}

// Restart starts a stopped server again on the same ports with the same data. It is a no-op when
// the server is running.
func (s *Server) Restart() error {
	if s.Running() {
		return nil
	}
	return s.start()
}

// Compact compacts the key space at the current revision and waits until the compaction is
// applied, so that a watch from an older revision fails with ErrCompacted. It returns the revision.
func (s *Server) Compact(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "compact-probe")
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	if _, err := s.client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, err
	}
	return rev, nil
}

// Close stops the server, closes every client and proxy it handed out and removes the data
// directory.
func (s *Server) Close() error {
	s.closersMu.Lock()
	closers := s.closers
	s.closers = nil
	s.closersMu.Unlock()
	var errs []error
	for _, c := range slices.Backward(closers) {
		errs = append(errs, c())
	}
	if err := s.Stop(); err != nil && !errors.Is(err, ErrNotRunning) {
		errs = append(errs, err)
	}
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}

// Main is a TestMain for a package whose tests share one server: it starts the server, stores it in
// *srv, runs the tests, closes the server and exits with the tests' status.
func Main(m *testing.M, srv **Server) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest: closing the server:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

var prefixSeq atomic.Int64

// Prefix returns a key prefix no other test in the process uses, derived from the test's name
// ("/test/TestAcquire_reuse/3"), so that tests can share one server.
func Prefix(tb testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, tb.Name())
	return fmt.Sprintf("/test/%s/%d", name, prefixSeq.Add(1))
}
