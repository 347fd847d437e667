// Package e2etest holds what the end-to-end test packages (test/e2e/...) share: polling, the lab's
// etcd and node files, traffic that counts lost pings, watches of the kernel entries weftd
// programs, and the gossip actor that plays rogue or churning members. Its own test,
// TestFuzzCorpora, checks that every parser of outside input has a fuzz target with a corpus.
package e2etest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/labtest"
	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/internal/poll"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// ModuleDir is the module root as seen from a package in test/e2e/.
const ModuleDir = "../../.."

// Soak reports whether the long variants run: WEFT_SOAK is set (make soak).
func Soak() bool { return os.Getenv("WEFT_SOAK") != "" }

// RequireSoak skips a long variant unless Soak.
func RequireSoak(t *testing.T) {
	t.Helper()
	if !Soak() {
		t.Skip("skipped: soak test, run with WEFT_SOAK=1 (make soak)")
	}
}

// Poll retries cond until it returns nil, failing t when timeout passes first, and returns how long
// that took.
func Poll(t *testing.T, what string, timeout time.Duration, cond func() error) time.Duration {
	t.Helper()
	took, err := poll.Until(context.Background(), what, timeout, cond)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// NS returns the lab's open namespace of the given name.
func NS(t *testing.T, l *lab.Lab, name string) ns.NetNS {
	t.Helper()
	n, err := l.NS(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Env reads node's subnet file.
func Env(t *testing.T, l *lab.Lab, n *lab.Node) *subnet.Env {
	t.Helper()
	e, err := l.Env(n)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// VTEPMAC returns the MAC of node n's VXLAN device.
func VTEPMAC(t *testing.T, l *lab.Lab, n *lab.Node) net.HardwareAddr {
	t.Helper()
	mac, err := l.VTEPMAC(n)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// Metric returns the value of metric name on node's metrics page, "absent" when it is not there or
// the error when the page cannot be read.
func Metric(t *testing.T, l *lab.Lab, n *lab.Node, name string) string {
	t.Helper()
	code, body, err := lab.HTTPGet(context.Background(), NS(t, l, n.Netns), "http://"+nodeapi.DefaultHealthAddr+nodeapi.PathMetrics)
	if err != nil || code != 200 {
		return fmt.Sprintf("error %v %d", err, code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return "absent"
}

// NodeLog returns node's weftd log.
func NodeLog(t *testing.T, n *lab.Node) string {
	t.Helper()
	data, err := os.ReadFile(labtest.WeftdLog(n))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// WaitLog waits until node's weftd log contains all of the given strings on one line.
func WaitLog(t *testing.T, n *lab.Node, timeout time.Duration, substrs ...string) {
	t.Helper()
	Poll(t, fmt.Sprintf("%s's log to show %q", n.Name, substrs), timeout, func() error {
		for _, line := range strings.Split(NodeLog(t, n), "\n") {
			if ContainsAll(line, substrs...) {
				return nil
			}
		}
		return fmt.Errorf("no such line")
	})
}

// ContainsAll reports whether s contains every one of substrs.
func ContainsAll(s string, substrs ...string) bool {
	for _, sub := range substrs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// ConfigKey is the network config's key in the lab's etcd, which serves weft's default prefix.
var ConfigKey = weftetcd.ConfigKey(weftetcd.DefaultPrefix)

// LeaseKey is the key of subnet s's lease in the lab's etcd.
func LeaseKey(s netip.Prefix) string { return weftetcd.SubnetKey(weftetcd.DefaultPrefix, s) }

// SubnetsConfig is a network config with exactly n allocatable subnets, 10.244.1.0/24 to
// 10.244.<n>.0/24.
func SubnetsConfig(n int) string {
	return fmt.Sprintf(`{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.%d.0","Backend":{"Type":"vxlan"}}`, n)
}

// WithEtcd runs fn with a client of the lab's etcd and a 10 s deadline, failing the test on error.
func WithEtcd(t *testing.T, l *lab.Lab, fn func(ctx context.Context, cli *clientv3.Client) error) {
	t.Helper()
	cli, err := l.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fn(ctx, cli); err != nil {
		t.Fatal(err)
	}
}

// EtcdPut writes key in the lab's etcd.
func EtcdPut(t *testing.T, l *lab.Lab, key, value string) {
	t.Helper()
	WithEtcd(t, l, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.Put(ctx, key, value)
		return err
	})
}

// EtcdDelete deletes key from the lab's etcd.
func EtcdDelete(t *testing.T, l *lab.Lab, key string) {
	t.Helper()
	WithEtcd(t, l, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.Delete(ctx, key)
		return err
	})
}

// EtcdGet reads key from the lab's etcd ("" when absent).
func EtcdGet(t *testing.T, l *lab.Lab, key string) string {
	t.Helper()
	var v string
	WithEtcd(t, l, func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, key)
		if err == nil && len(resp.Kvs) > 0 {
			v = string(resp.Kvs[0].Value)
		}
		return err
	})
	return v
}
