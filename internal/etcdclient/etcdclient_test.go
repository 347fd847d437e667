package etcdclient

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
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

func TestNew(t *testing.T) {
	cli, err := New(Config{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Get(testCtx(t), "x"); err != nil {
		t.Errorf("get: %v", err)
	}
	_, err = New(Config{Endpoints: srv.Endpoints(), CAFile: filepath.Join(t.TempDir(), "missing-ca.pem")})
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
