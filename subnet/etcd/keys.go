package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyValue is one key under SubnetsPrefix as etcd holds it, whatever its value.
type KeyValue struct {
	Key string
	// Subnet is the subnet the key names; invalid when the key does not parse, and KeyErr says why.
	Subnet netip.Prefix
	KeyErr error
	Value  []byte
	// EtcdLease is the key's etcd lease; 0 for a key without one.
	EtcdLease   int64
	ModRevision int64
}

// Keys lists every key under SubnetsPrefix at revision rev (0: the current one), sorted by key, and
// returns the revision it read.
func (m *Manager) Keys(ctx context.Context, rev int64) ([]KeyValue, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
	if rev != 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := m.cli.Get(ctx, m.SubnetsPrefix(), opts...)
	m.observe(err)
	if err != nil {
		return nil, 0, fmt.Errorf("listing keys under %s: %w", m.SubnetsPrefix(), err)
	}
	out := make([]KeyValue, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		s, err := m.keySubnet(string(kv.Key))
		out = append(out, KeyValue{Key: string(kv.Key), Subnet: s, KeyErr: err, Value: kv.Value, EtcdLease: kv.Lease, ModRevision: kv.ModRevision})
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	return out, rev, nil
}

// LeaseTTL returns the time etcd lease id has left and the TTL it was granted with; both are zero
// for a lease that expired or was revoked.
func (m *Manager) LeaseTTL(ctx context.Context, id int64) (left, granted time.Duration, err error) {
	resp, err := m.cli.TimeToLive(ctx, clientv3.LeaseID(id))
	m.observe(err)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("reading etcd lease %x: %w", id, err)
	case resp.TTL <= 0:
		return 0, 0, nil
	}
	return time.Duration(resp.TTL) * time.Second, time.Duration(resp.GrantedTTL) * time.Second, nil
}
