package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet"
	"github.com/weft-net/weft/subnet/etcd"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts etcd.Options
		want string // substring of the error; empty for none
	}{
		{"defaults", etcd.Options{}, ""},
		{"flannel prefix", etcd.Options{Prefix: etcd.FlannelPrefix, NodeName: "n1"}, ""},
		{"relative prefix", etcd.Options{Prefix: "weft/network"}, `Prefix="weft/network"`},
		{"trailing slash", etcd.Options{Prefix: "/weft/"}, `Prefix="/weft/"`},
		{"double slash", etcd.Options{Prefix: "/weft//network"}, `Prefix="/weft//network"`},
		{"node name newline", etcd.Options{NodeName: "a\nb"}, `NodeName="a\nb"`},
		{"node name too long", etcd.Options{NodeName: strings.Repeat("n", 254)}, "NodeName="},
		{"sub-second TTL", etcd.Options{TTL: 500 * time.Millisecond}, "TTL=500ms"},
		{"fractional TTL", etcd.Options{TTL: 1500 * time.Millisecond}, "TTL=1.5s"},
		{"negative interval", etcd.Options{CheckInterval: -time.Second}, "CheckInterval=-1s"},
		{"negative timeout", etcd.Options{RequestTimeout: -time.Second}, "RequestTimeout=-1s"},
		{"retry max below min", etcd.Options{RetryMin: time.Second, RetryMax: time.Millisecond}, "RetryMax=1ms: below RetryMin=1s"},
		{"negative coalesce", etcd.Options{Coalesce: -time.Second}, "Coalesce=-1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := etcd.New(srv.Client(), tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, etcd.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want ErrInvalidOptions mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := etcd.New(nil, etcd.Options{}); !errors.Is(err, etcd.ErrInvalidOptions) {
		t.Fatalf("New(nil client): %v, want ErrInvalidOptions", err)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		flannel bool   // use flannel's prefix
		compat  bool   // Options.FlannelCompat
		value   string // empty: no config key
		want    string // rendered config
		wantErr error
		errText string
	}{
		{name: "missing", wantErr: etcd.ErrNoConfig, errText: "/config does not exist"},
		{
			name:  "flannel defaults",
			value: `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}`,
			want:  "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=1 port=8472",
		},
		{
			name:  "stock kubernetes net-conf",
			value: `{"Network":"10.244.0.0/16","EnableNFTables":false,"Backend":{"Type":"vxlan"}}`,
			want:  "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=1 port=8472",
		},
		{
			name:  "explicit bounds",
			value: `{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.99.0.0","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}`,
			want:  "10.0.0.0/8 len=20 min=10.10.0.0 max=10.99.0.0 vni=4096 port=4789",
		},
		{name: "misspelled field", value: `{"Netwrok":"10.244.0.0/16"}`, wantErr: subnet.ErrInvalidConfig, errText: "Netwrok"},
		{name: "not JSON", value: `Network=10.244.0.0/16`, wantErr: subnet.ErrInvalidConfig, errText: "/config"},
		{
			name:  "24-bit VNI on weft's prefix",
			value: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`,
			want:  "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=70000 port=8472",
		},
		{
			name: "24-bit VNI shared with flannel on its prefix", flannel: true, compat: true,
			value:   `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`,
			wantErr: subnet.ErrInvalidConfig, errText: "Backend.VNI=70000",
		},
		{
			name: "24-bit VNI shared with flannel on a custom prefix", compat: true,
			value:   `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`,
			wantErr: subnet.ErrInvalidConfig, errText: "flannel nodes share this prefix",
		},
		{
			name: "24-bit VNI on flannel's prefix without flannel nodes", flannel: true,
			value: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`,
			want:  "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=70000 port=8472",
		},
		{name: "unknown field", value: `{"Network":"10.244.0.0/16","Future":1}`, wantErr: subnet.ErrInvalidConfig, errText: "unknown field Future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := etcdtest.Prefix(t)
			if tt.flannel {
				prefix = etcd.FlannelPrefix
				cleanPrefix(t, prefix)
			}
			if tt.value != "" {
				putConfig(t, prefix, tt.value)
			}
			n := newNode(t, srv.Client(), prefix, "n1", func(o *etcd.Options) { o.FlannelCompat = tt.compat })
			cfg, err := n.m.Config(testCtx(t))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Config: %v, want %v mentioning %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			if got := renderConfig(cfg); got != tt.want {
				t.Fatalf("Config = %s, want %s", got, tt.want)
			}
		})
	}
}

func renderConfig(c *subnet.Config) string {
	return fmt.Sprintf("%s len=%d min=%s max=%s vni=%d port=%d", c.Network, c.SubnetLen, c.SubnetMin, c.SubnetMax, c.Backend.VNI, c.Backend.Port)
}

// lockedBuffer is a bytes.Buffer safe for the logger's goroutine and the test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWaitConfig(t *testing.T) {
	prefix := etcdtest.Prefix(t)
	var logs lockedBuffer
	n := newNode(t, srv.Client(), prefix, "n1", func(o *etcd.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	type result struct {
		cfg *subnet.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := n.m.WaitConfig(testCtx(t))
		done <- result{cfg, err}
	}()
	key := prefix + "/config"
	waitFor(t, "a log line naming the config key", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "key="+key+" reason=missing")
	})
	putConfig(t, prefix, `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlann"}}`)
	waitFor(t, "a log line about the invalid config", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "reason=invalid")
	})
	putConfig(t, prefix, `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("WaitConfig: %v", r.err)
		}
		if got, want := renderConfig(r.cfg), "10.244.0.0/16 len=24 min=10.244.1.0 max=10.244.255.0 vni=1 port=8472"; got != want {
			t.Fatalf("WaitConfig = %s, want %s", got, want)
		}
	case <-time.After(testTimeout):
		t.Fatal("WaitConfig did not return after the config was written")
	}
	if c := strings.Count(logs.String(), "reason=missing"); c != 1 {
		t.Errorf("logged the missing config %d times, want once:\n%s", c, logs.String())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	other := newNode(t, srv.Client(), etcdtest.Prefix(t), "n1", nil)
	if _, err := other.m.WaitConfig(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, etcd.ErrNoConfig) {
		t.Fatalf("WaitConfig with a deadline: %v, want DeadlineExceeded and ErrNoConfig", err)
	}
}

// cleanPrefix deletes every key under prefix, now and after the test.
func cleanPrefix(t testing.TB, prefix string) {
	t.Helper()
	clean := func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if _, err := srv.Client().Delete(ctx, prefix+"/", clientv3.WithPrefix()); err != nil {
			t.Errorf("cleaning %s: %v", prefix, err)
		}
	}
	clean()
	t.Cleanup(clean)
}
