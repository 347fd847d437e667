package etcdclient

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/etcdtest"
)

var srv *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, &srv) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"http", Config{Endpoints: []string{"http://127.0.0.1:2379"}}, ""},
		{"https and TLS", Config{Endpoints: []string{"https://etcd-0:2379", "https://etcd-1:2379"}, CertFile: "c", KeyFile: "k", CAFile: "ca"}, ""},
		{"host:port", Config{Endpoints: []string{"127.0.0.1:2379"}}, ""},
		{"unix socket", Config{Endpoints: []string{"unix:///run/etcd.sock"}}, ""},
		{"none", Config{}, "-etcd-endpoints: at least one endpoint"},
		{"scheme", Config{Endpoints: []string{"ftp://x:1"}}, `scheme "ftp"`},
		{"no port", Config{Endpoints: []string{"http://etcd"}}, "want scheme://host:port"},
		{"cert without key", Config{Endpoints: []string{"http://x:1"}, CertFile: "c"}, "go together"},
		{"negative timeout", Config{Endpoints: []string{"http://x:1"}, DialTimeout: -time.Second}, "DialTimeout"},
		{"CA over http", Config{Endpoints: []string{"http://x:1"}, CAFile: "ca"}, "-etcd-ca given but endpoint http://x:1 is plaintext and would not use TLS; use https://x:1"},
		{"certificate over http", Config{Endpoints: []string{"http://x:1"}, CertFile: "c", KeyFile: "k"}, "-etcd-cert, -etcd-key given but endpoint http://x:1 is plaintext"},
		{"TLS with a second endpoint over http", Config{Endpoints: []string{"https://x:1", "http://y:1"}, CAFile: "ca"}, "endpoint http://y:1 is plaintext"},
		{"password over http", Config{Endpoints: []string{"http://x:1"}, Username: "u", Password: "p"}, "-etcd-password is set but endpoint http://x:1 is plaintext and would send it in clear; use https://x:1"},
		{"password over host:port without TLS files", Config{Endpoints: []string{"x:1"}, Password: "p"}, "endpoint http://x:1 is plaintext"},
		{"password over https", Config{Endpoints: []string{"https://x:1"}, Username: "u", Password: "p"}, ""},
		{"password and CA over host:port", Config{Endpoints: []string{"x:1"}, CAFile: "ca", Password: "p"}, ""},
		{"certificate over host:port", Config{Endpoints: []string{"x:1", "y:1"}, CertFile: "c", KeyFile: "k"}, ""},
		{"password over a unix socket", Config{Endpoints: []string{"unix:///run/etcd.sock"}, Password: "p"}, ""},
		{"CA over a unix socket", Config{Endpoints: []string{"unix:///run/etcd.sock", "https://x:1"}, CAFile: "ca"}, ""},
		{"http and https mixed", Config{Endpoints: []string{"http://x:1", "https://y:1"}}, "http://x:1 and https://y:1: all endpoints must use TLS or none"},
		{"host:port and https mixed", Config{Endpoints: []string{"https://x:1", "y:1"}}, "https://x:1 and http://y:1: all endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want ErrInvalidConfig naming %q", err, tc.err)
			}
		})
	}
}

func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		endpoint string
		want     string
	}{
		{"host:port without TLS files", Config{}, "10.0.0.1:2379", "http://10.0.0.1:2379"},
		{"host:port with a CA", Config{CAFile: "ca"}, "10.0.0.1:2379", "https://10.0.0.1:2379"},
		{"host:port with a certificate", Config{CertFile: "c", KeyFile: "k"}, "10.0.0.1:2379", "https://10.0.0.1:2379"},
		{"host:port with a password only", Config{Username: "u", Password: "p"}, "10.0.0.1:2379", "http://10.0.0.1:2379"},
		{"http stays http", Config{CAFile: "ca"}, "http://10.0.0.1:2379", "http://10.0.0.1:2379"},
		{"https stays https", Config{}, "https://etcd-0:2379", "https://etcd-0:2379"},
		{"IPv6 host:port", Config{CAFile: "ca"}, "[2001:db8::1]:2379", "https://[2001:db8::1]:2379"},
		{"unix socket", Config{CAFile: "ca"}, "unix:///run/etcd.sock", "unix:///run/etcd.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.cfg.endpointURL(tc.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tc.want {
				t.Errorf("endpointURL(%q) = %s, want %s", tc.endpoint, u, tc.want)
			}
		})
	}
}

// countingProxy forwards TCP connections to the embedded etcd and counts them.
func countingProxy(t *testing.T) (endpoint string, conns *atomic.Int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(srv.Endpoints()[0], "http://")
	conns = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return "http://" + l.Addr().String(), conns
}

// TestPasswordOverHTTPRefused checks against the embedded etcd, through a proxy that counts
// connections, that a password with an http endpoint is refused without connecting, while the same
// endpoint without a password works.
func TestPasswordOverHTTPRefused(t *testing.T) {
	ep, conns := countingProxy(t)
	cli, err := New(Config{Endpoints: []string{ep}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(testCtx(t), "x"); err != nil {
		t.Fatalf("get through the proxy without a password: %v", err)
	}
	cli.Close()
	before := conns.Load()
	if before == 0 {
		t.Fatal("the proxy counted no connection for a working client")
	}
	cfg := Config{Endpoints: []string{ep}, Username: "root", Password: "secret"}
	cli, err = New(cfg)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "-etcd-password is set but endpoint "+ep+" is plaintext") {
		t.Errorf("New with a password over http: err = %v, want ErrInvalidConfig naming -etcd-password", err)
	}
	if cli != nil {
		t.Error("New with a password over http returned a client")
		cli.Close()
	}
	err = Diagnose(testCtx(t), cfg)
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrUnreachable) {
		t.Errorf("Diagnose with a password over http: err = %v, want ErrInvalidConfig and ErrUnreachable", err)
	}
	if n := conns.Load(); n != before {
		t.Errorf("%d connections made with a password over http, want none", n-before)
	}
}

func TestNew(t *testing.T) {
	cli, err := New(Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Get(testCtx(t), "x"); err != nil {
		t.Errorf("get: %v", err)
	}
	tlsEndpoint := "https://" + strings.TrimPrefix(srv.Endpoints()[0], "http://")
	_, err = New(Config{Endpoints: []string{tlsEndpoint}, CAFile: filepath.Join(t.TempDir(), "missing-ca.pem")})
	if err == nil || !strings.Contains(err.Error(), "etcd TLS") {
		t.Errorf("missing CA file: err = %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no endpoints: err = %v", err)
	}
}

// silent is a loopback port that accepts connections and never answers.
func silent(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

func closed(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDiagnose(t *testing.T) {
	refused := closed(t)
	quiet := silent(t)
	up := srv.Endpoints()[0]
	for _, tc := range []struct {
		name      string
		endpoints []string
		want      []string // substrings of the error; none: reachable
	}{
		{"up", []string{up}, nil},
		{"one of two up", []string{"http://" + refused, up}, nil},
		{"refused", []string{"http://" + refused}, []string{"http://" + refused + ": dial tcp " + refused, "connection refused"}},
		{"silent", []string{"http://" + quiet}, []string{"http://" + quiet + ": connected, but etcd sent no status"}},
		{"TLS to a plain server", []string{"https://" + strings.TrimPrefix(up, "http://")}, []string{"TLS handshake"}},
		{"every endpoint named", []string{"http://" + refused, "http://" + quiet}, []string{"http://" + refused + ":", "; http://" + quiet + ":"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Diagnose(testCtx(t), Config{Endpoints: tc.endpoints, DialTimeout: 500 * time.Millisecond})
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("err = %v, want ErrUnreachable", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
