package etcdtest

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Put writes value at key through the shared client, attached to a new etcd lease of ttl seconds
// (none for 0), and returns that lease's ID (0 for none).
func (s *Server) Put(ctx context.Context, key, value string, ttl int64) (int64, error) {
	var opts []clientv3.OpOption
	var id clientv3.LeaseID
	if ttl > 0 {
		g, err := s.client.Grant(ctx, ttl)
		if err != nil {
			return 0, fmt.Errorf("granting a lease for %s: %w", key, err)
		}
		id = g.ID
		opts = append(opts, clientv3.WithLease(id))
	}
	if _, err := s.client.Put(ctx, key, value, opts...); err != nil {
		return 0, fmt.Errorf("writing %s: %w", key, err)
	}
	return int64(id), nil
}

// Get returns the value of key and its etcd lease, and whether the key exists.
func (s *Server) Get(ctx context.Context, key string) (value string, lease int64, ok bool, err error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return "", 0, false, err
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, true, nil
}

// Keys returns the keys under prefix, sorted.
func (s *Server) Keys(ctx context.Context, prefix string) ([]string, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = string(kv.Key)
	}
	return out, nil
}

// Delete deletes key, or every key under it with prefix.
func (s *Server) Delete(ctx context.Context, key string, prefix bool) error {
	var opts []clientv3.OpOption
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	_, err := s.client.Delete(ctx, key, opts...)
	return err
}

// LeaseTTL returns the seconds etcd lease id has left and was granted.
func (s *Server) LeaseTTL(ctx context.Context, id int64) (left, granted int64, err error) {
	resp, err := s.client.TimeToLive(ctx, clientv3.LeaseID(id))
	if err != nil {
		return 0, 0, err
	}
	return resp.TTL, resp.GrantedTTL, nil
}
