package lab

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	weftetcd "github.com/weft-net/weft/subnet/etcd"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/weft-net/weft/internal/nsutil"

	"github.com/weft-net/weft/subnet"
)

// ServeEtcd runs an embedded single-member etcd listening for clients on listen (ip:port), puts
// networkConfig at <prefix>/config unless a config is there already, writes dataDir/ready and serves
// until ctx ends. `weft-demo etcd` runs it in the underlay namespace.
func ServeEtcd(ctx context.Context, listen, dataDir, prefix, networkConfig string) error {
	if _, err := subnet.ParseConfig([]byte(networkConfig)); err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dataDir
	cfg.LogLevel = "error"
	client, err := url.Parse("http://" + listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", listen, err)
	}
	peer, err := url.Parse("http://127.0.0.1:2380")
	if err != nil {
		return err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		return fmt.Errorf("etcd not ready within 60s")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	key := weftetcd.ConfigKey(prefix)
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, networkConfig)).Commit(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "ready"), nil, 0o644); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return err
	}
}

// EtcdClient returns a client of the lab's etcd that dials into the underlay namespace, so it works
// from the host.
func (l *Lab) EtcdClient() (*clientv3.Client, error) {
	ul, err := l.netns(l.UnderlayNetns())
	if err != nil {
		return nil, err
	}
	dial := nsutil.Dialer(ul)
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{l.EtcdEndpoint()},
		DialTimeout: 3 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})},
		Logger: zap.NewNop(),
	})
}
