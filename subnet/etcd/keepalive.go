package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
)

// errRewatch asks guard to read its key again and watch from there.
var errRewatch = errors.New("watch ended")

// KeepAlive holds the lease l until ctx is done (then it returns nil) or the lease is lost. It
// renews l's etcd lease through etcd's keep-alive stream and watches l's key, reading it again every
// Options.CheckInterval. It returns an error wrapping ErrLeaseLost when the etcd lease expires or is
// revoked, or when the key is deleted or names another node. While etcd is unreachable it retries
// with backoff and reports it through EtcdUp; the lease survives an outage shorter than its TTL.
// A reservation (no etcd lease) is only watched.
func (m *Manager) KeepAlive(ctx context.Context, l *subnet.Lease) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	if l.EtcdLease != 0 {
		wg.Go(func() { errc <- m.renew(ctx, l) })
	}
	wg.Go(func() { errc <- m.guard(ctx, l) })
	err := <-errc
	cancel()
	wg.Wait()
	switch {
	case errors.Is(err, ErrLeaseLost):
		m.log.Warn("lost subnet lease", "subnet", l.Subnet, "err", err)
	case err != nil:
		m.log.Error("keeping the subnet lease failed", "subnet", l.Subnet, "err", err)
	}
	return err
}

// renew keeps l's etcd lease alive until ctx is done or the lease is gone.
func (m *Manager) renew(ctx context.Context, l *subnet.Lease) error {
	id := clientv3.LeaseID(l.EtcdLease)
	bo := m.newBackoff()
	for {
		ch, err := m.cli.KeepAlive(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("keeping etcd lease %x of %s alive: %w", l.EtcdLease, l.Subnet, err)
		}
		for resp := range ch {
			m.observe(nil)
			bo.Reset()
			m.expiry.Store(time.Now().Add(time.Duration(resp.TTL) * time.Second).UnixNano())
		}
		if ctx.Err() != nil {
			return nil
		}
		// The stream ended: the lease is gone, or no answer came in time.
		rctx, cancel := m.reqCtx(ctx)
		resp, err := m.cli.TimeToLive(rctx, id)
		cancel()
		m.observe(err)
		switch {
		case err == nil && resp.TTL > 0:
		case err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound):
			return fmt.Errorf("%w: %s: etcd lease %x expired or was revoked", ErrLeaseLost, l.Subnet, l.EtcdLease)
		case ctx.Err() != nil:
			return nil
		default:
			m.logRetry("cannot renew the subnet lease, retrying", err, "subnet", l.Subnet)
		}
		if !bo.Wait(ctx) {
			return nil
		}
	}
}

// guard watches l's key until ctx is done or the key is no longer this node's.
func (m *Manager) guard(ctx context.Context, l *subnet.Lease) error {
	key := m.SubnetKey(l.Subnet)
	bo := m.newBackoff()
	tick := time.NewTicker(m.opts.CheckInterval)
	defer tick.Stop()
	for {
		rev, err := m.checkOwn(ctx, key, l)
		switch {
		case errors.Is(err, ErrLeaseLost):
			return err
		case ctx.Err() != nil:
			return nil
		case err != nil:
			m.logRetry("cannot read the own subnet key, retrying", err, "key", key)
			if !bo.Wait(ctx) {
				return nil
			}
			continue
		}
		bo.Reset()
		err = m.follow(ctx, key, rev, l, tick.C)
		switch {
		case errors.Is(err, ErrLeaseLost):
			return err
		case ctx.Err() != nil:
			return nil
		}
		m.log.Debug("re-reading the own subnet key", "key", key, "reason", err)
	}
}

// checkOwn reads key and returns the revision read, or an error wrapping ErrLeaseLost when the key
// is no longer this node's.
func (m *Manager) checkOwn(ctx context.Context, key string, l *subnet.Lease) (int64, error) {
	rctx, cancel := m.reqCtx(ctx)
	resp, err := m.cli.Get(rctx, key)
	cancel()
	m.observe(err)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%w: %s: key %s was deleted", ErrLeaseLost, l.Subnet, key)
	}
	if err := m.ownValue(l, key, resp.Kvs[0].Value); err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func (m *Manager) ownValue(l *subnet.Lease, key string, value []byte) error {
	if id := readIdentity(value); id.NodeName != m.opts.NodeName {
		return fmt.Errorf("%w: %s: key %s is now held by %s", ErrLeaseLost, l.Subnet, key, id.Holder())
	}
	return nil
}

// follow watches key from after rev. It returns an error wrapping ErrLeaseLost when the key is
// deleted or taken, and errRewatch (or the watch error) when the watch must be set up again. On
// every tick it reads the key as well.
func (m *Manager) follow(ctx context.Context, key string, rev int64, l *subnet.Lease, tick <-chan time.Time) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := m.cli.Watch(wctx, key, clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			_, err := m.checkOwn(ctx, key, l)
			switch {
			case errors.Is(err, ErrLeaseLost):
				return err
			case err != nil && ctx.Err() == nil:
				m.logRetry("cannot read the own subnet key", err, "key", key)
			}
		case wr, ok := <-wch:
			if !ok {
				return errRewatch
			}
			if err := wr.Err(); err != nil {
				m.observe(err)
				return err
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return fmt.Errorf("%w: %s: key %s was deleted at revision %d", ErrLeaseLost, l.Subnet, key, ev.Kv.ModRevision)
				}
				if err := m.ownValue(l, key, ev.Kv.Value); err != nil {
					return err
				}
			}
		}
	}
}
