package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
)

// LeaseSet is every key under SubnetsPrefix at one revision: the leases whose value parses, sorted
// by subnet, and the keys that do not parse, sorted by key. A malformed key still occupies the subnet
// it names: Acquire never hands that subnet out.
type LeaseSet struct {
	Leases    []subnet.Lease
	Malformed []Malformed
	// Revision is the etcd revision the set reflects.
	Revision int64
}

// Malformed is a key under SubnetsPrefix whose name or value does not parse.
type Malformed struct {
	Key string
	// Subnet is the subnet the key names; invalid when the key itself does not parse.
	Subnet netip.Prefix
	// EtcdLease is the key's etcd lease; 0 for a key without one.
	EtcdLease   int64
	ModRevision int64
	// Err says what is wrong; it wraps subnet.ErrInvalidLease.
	Err error
}

// leaseSet builds the set from the keys in kvs (any order).
func (m *Manager) leaseSet(kvs []*mvccpb.KeyValue, rev int64) LeaseSet {
	ls := LeaseSet{Revision: rev}
	for _, kv := range kvs {
		key := string(kv.Key)
		s, err := m.keySubnet(key)
		if err == nil {
			var a *subnet.LeaseAttrs
			if a, err = subnet.ParseLeaseAttrs(kv.Value); err == nil {
				ls.Leases = append(ls.Leases, subnet.Lease{Subnet: s, Attrs: *a, EtcdLease: kv.Lease, ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision})
				continue
			}
		}
		ls.Malformed = append(ls.Malformed, Malformed{Key: key, Subnet: s, EtcdLease: kv.Lease, ModRevision: kv.ModRevision, Err: err})
	}
	slices.SortFunc(ls.Leases, func(a, b subnet.Lease) int { return a.Subnet.Compare(b.Subnet) })
	slices.SortFunc(ls.Malformed, func(a, b Malformed) int { return strings.Compare(a.Key, b.Key) })
	return ls
}

// List reads every lease. Expiry is left zero; FillExpiry reads it.
func (m *Manager) List(ctx context.Context) (LeaseSet, error) {
	resp, err := m.cli.Get(ctx, m.SubnetsPrefix(), clientv3.WithPrefix())
	m.observe(err)
	if err != nil {
		return LeaseSet{}, fmt.Errorf("listing leases under %s: %w", m.SubnetsPrefix(), err)
	}
	return m.leaseSet(resp.Kvs, resp.Header.Revision), nil
}

// FillExpiry sets the Expiry of every lease in ls that has an etcd lease, asking etcd for the time
// each etcd lease has left (one request per etcd lease). A lease gone meanwhile keeps a zero Expiry.
func (m *Manager) FillExpiry(ctx context.Context, ls *LeaseSet) error {
	expiry := make(map[int64]time.Time)
	for i := range ls.Leases {
		l := &ls.Leases[i]
		if l.EtcdLease == 0 {
			continue
		}
		t, ok := expiry[l.EtcdLease]
		if !ok {
			left, _, err := m.LeaseTTL(ctx, l.EtcdLease)
			if err != nil {
				return fmt.Errorf("%s: %w", l.Subnet, err)
			}
			if left > 0 {
				t = time.Now().Add(left)
			}
			expiry[l.EtcdLease] = t
		}
		l.Expiry = t
	}
	return nil
}

// Watch calls fn with the full lease set, first as listed and then after every change (a lease
// added, its attributes updated, or removed), until ctx is done; then it returns nil. Changes that
// come within Options.Coalesce of each other are reported together. The watch resumes from the last
// revision seen, and the set is listed afresh after a compaction or a failed watch, so fn always gets
// the whole state, never a delta. fn runs on Watch's goroutine and owns the set it is given.
// Malformed keys are logged once per key and revision and reported in LeaseSet.Malformed; they never
// hide the other leases.
func (m *Manager) Watch(ctx context.Context, fn func(LeaseSet)) error {
	w := watcher{m: m, fn: fn, logged: make(map[string]int64)}
	bo := m.newBackoff()
	for {
		rctx, cancel := m.reqCtx(ctx)
		resp, err := m.cli.Get(rctx, m.SubnetsPrefix(), clientv3.WithPrefix())
		cancel()
		m.observe(err)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			m.logRetry("cannot list leases, retrying", err, "prefix", m.SubnetsPrefix())
			if !bo.Wait(ctx) {
				return nil
			}
			continue
		}
		bo.Reset()
		w.kvs = make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			w.kvs[string(kv.Key)] = kv
		}
		w.rev = resp.Header.Revision
		w.emit()
		err = w.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			m.log.Info("lease watch fell behind a compaction; listing again", "revision", w.rev)
			continue
		}
		m.log.Warn("lease watch ended; listing again", "revision", w.rev, "err", err)
		if !bo.Wait(ctx) {
			return nil
		}
	}
}

// watcher is the state of one Watch call.
type watcher struct {
	m      *Manager
	fn     func(LeaseSet)
	kvs    map[string]*mvccpb.KeyValue
	rev    int64
	logged map[string]int64
}

// follow applies watch events to w.kvs, reporting each coalesced burst, until the watch fails.
func (w *watcher) follow(ctx context.Context) error {
	m := w.m
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := m.cli.Watch(wctx, m.SubnetsPrefix(), clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	var flush <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-flush:
			flush = nil
			w.emit()
		case wr, ok := <-wch:
			if !ok {
				return errRewatch
			}
			if err := wr.Err(); err != nil {
				m.observe(err)
				return err
			}
			m.observe(nil)
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					delete(w.kvs, string(ev.Kv.Key))
				} else {
					w.kvs[string(ev.Kv.Key)] = ev.Kv
				}
				w.rev = max(w.rev, ev.Kv.ModRevision)
			}
			if len(wr.Events) > 0 && flush == nil {
				flush = time.After(m.opts.Coalesce)
			}
		}
	}
}

// emit reports the current set, logging malformed keys not logged at their revision yet.
func (w *watcher) emit() {
	ls := w.m.leaseSet(slices.Collect(maps.Values(w.kvs)), w.rev)
	seen := make(map[string]bool, len(ls.Malformed))
	for _, bad := range ls.Malformed {
		seen[bad.Key] = true
		if w.logged[bad.Key] != bad.ModRevision {
			w.logged[bad.Key] = bad.ModRevision
			w.m.log.Warn("ignoring malformed lease; its subnet stays taken", "key", bad.Key, "revision", bad.ModRevision, "err", bad.Err)
		}
	}
	for key := range w.logged {
		if !seen[key] {
			delete(w.logged, key)
		}
	}
	w.fn(ls)
}
