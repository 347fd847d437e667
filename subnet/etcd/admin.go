package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
)

// Reserve reserves subnet s for the node attrs.NodeName: a key with no etcd lease, which never
// expires, is never handed to another node, and is reused by that node without a TTL. s must be a
// subnet of the network config's Network with its SubnetLen. attrs must name the node and its
// public IPv4 address (flannel nodes sharing the prefix cannot read a value without one); the
// other attributes may be left out: until the node takes the reservation and writes them, Watch
// reports the key as malformed. A key the node already holds is turned into a reservation, keeping
// its value; an existing reservation for the node is left alone. A key held by another node gives an
// error wrapping ErrSubnetInUse.
func (m *Manager) Reserve(ctx context.Context, s netip.Prefix, attrs subnet.LeaseAttrs) error {
	if attrs.NodeName == "" || strings.ContainsAny(attrs.NodeName, "\x00\n") || len(attrs.NodeName) > 253 {
		return fmt.Errorf("%w: reserving %s: NodeName=%q: a reservation names its node", subnet.ErrInvalidLease, s, attrs.NodeName)
	}
	if err := subnet.CheckPublicIP(attrs.PublicIP); err != nil {
		return fmt.Errorf("%w: reserving %s: PublicIP=%q: want the node's unicast IPv4 address: %w", subnet.ErrInvalidLease, s, attrs.PublicIP.String(), err)
	}
	cfg, err := m.Config(ctx)
	if err != nil {
		return err
	}
	if !s.IsValid() || s.Masked() != s || !cfg.Covers(s) {
		return fmt.Errorf("%w: %s: want a /%d subnet of %s", ErrInvalidSubnet, s, cfg.SubnetLen, cfg.Network)
	}
	attrs.Format = subnet.LeaseFormat
	attrs.AttrVersion = time.Now().UnixNano()
	val, err := attrs.MarshalJSON()
	if err != nil {
		return err
	}
	key := m.SubnetKey(s)
	for {
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val))).
			Else(clientv3.OpGet(key)).
			Commit()
		m.observe(err)
		if err != nil {
			return fmt.Errorf("reserving %s: %w", key, err)
		}
		if resp.Succeeded {
			m.log.Info("reserved subnet", "subnet", s, "node", attrs.NodeName)
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		kv := kvs[0]
		if id := readIdentity(kv.Value); id.NodeName != attrs.NodeName {
			return fmt.Errorf("%w: %s is held by %s", ErrSubnetInUse, s, id.Holder())
		}
		if kv.Lease == 0 {
			return nil
		}
		// The node holds the subnet: detach the key from its etcd lease, keeping the node's value.
		tr, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, string(kv.Value))).
			Commit()
		m.observe(err)
		if err != nil {
			return fmt.Errorf("reserving %s: %w", key, err)
		}
		if tr.Succeeded {
			m.log.Info("turned a lease into a reservation", "subnet", s, "node", attrs.NodeName)
			return nil
		}
	}
}

// Reclaim frees subnet s: it deletes every key naming s (a lease or a reservation, in any key form)
// and revokes each deleted key's etcd lease when no other key is attached to it. Reclaiming a free
// subnet does nothing. A node still running loses its lease (KeepAlive reports ErrLeaseLost) and may
// acquire again.
func (m *Manager) Reclaim(ctx context.Context, s netip.Prefix) error {
	for {
		v, err := m.list(ctx)
		if err != nil {
			return err
		}
		var lost bool
		for _, e := range v {
			if e.subnet != s {
				continue
			}
			key := string(e.kv.Key)
			resp, err := m.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", e.kv.ModRevision)).
				Then(clientv3.OpDelete(key)).
				Commit()
			m.observe(err)
			if err != nil {
				return fmt.Errorf("reclaiming %s: %w", key, err)
			}
			if !resp.Succeeded {
				lost = true
				continue
			}
			m.log.Info("reclaimed subnet", "key", key, "holder", e.id.Holder())
			if e.kv.Lease != 0 {
				if err := m.revokeIfUnused(ctx, e.kv.Lease); err != nil {
					return fmt.Errorf("reclaimed %s but %w", key, err)
				}
			}
		}
		if !lost {
			return nil
		}
	}
}

// revokeIfUnused revokes etcd lease id when no key is attached to it any more.
func (m *Manager) revokeIfUnused(ctx context.Context, id int64) error {
	resp, err := m.cli.TimeToLive(ctx, clientv3.LeaseID(id), clientv3.WithAttachedKeys())
	m.observe(err)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound) || err == nil && resp.TTL <= 0:
		return nil
	case err != nil:
		return fmt.Errorf("reading etcd lease %x: %w", id, err)
	case len(resp.Keys) > 0:
		return nil
	}
	if _, err := m.cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoking etcd lease %x: %w", id, err)
	}
	return nil
}

// SubnetHistory is what etcd still remembers of one subnet key.
type SubnetHistory struct {
	Key string
	// Since is the oldest revision etcd keeps (1 if it never compacted): changes before it are gone.
	// When the key existed at Since, the first entry is its value then, with the revision of the
	// write that set it, which can be older than Since.
	Since int64
	// Revision is the revision the history runs up to.
	Revision int64
	// Entries are the key's writes and deletions, oldest first.
	Entries []HistoryEntry
}

// HistoryEntry is one write or deletion of a subnet key.
type HistoryEntry struct {
	Revision  int64
	Deleted   bool
	EtcdLease int64
	// Value is the raw value written (nil for a deletion), Attrs the value parsed, or Err why it does
	// not parse.
	Value []byte
	Attrs *subnet.LeaseAttrs
	Err   error
}

func historyEntry(rev int64, lease int64, value []byte) HistoryEntry {
	e := HistoryEntry{Revision: rev, EtcdLease: lease, Value: value}
	e.Attrs, e.Err = subnet.ParseLeaseAttrs(value)
	return e
}

// historyPoll is how often History asks etcd whether its watch has caught up.
const historyPoll = 50 * time.Millisecond

// History returns every write and deletion of the key of s that etcd still keeps, replaying them
// with a watch from the oldest revision compaction left.
func (m *Manager) History(ctx context.Context, s netip.Prefix) (SubnetHistory, error) {
	key := m.SubnetKey(s)
	cur, err := m.cli.Get(ctx, key)
	m.observe(err)
	if err != nil {
		return SubnetHistory{}, fmt.Errorf("history of %s: %w", key, err)
	}
	h := SubnetHistory{Key: key, Since: 1, Revision: cur.Header.Revision}
	from := int64(1)
	for {
		entries, compacted, err := m.replay(ctx, key, from, h.Revision)
		if err != nil {
			return SubnetHistory{}, fmt.Errorf("history of %s: %w", key, err)
		}
		if compacted == 0 {
			h.Entries = append(h.Entries, entries...)
			return h, nil
		}
		// Start at the compaction point, with the value in force there.
		h.Since, h.Entries, from = compacted, nil, compacted
		h.Revision = max(h.Revision, compacted)
		resp, err := m.cli.Get(ctx, key, clientv3.WithRev(compacted))
		m.observe(err)
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			// Compacted again meanwhile: the next replay finds the new compaction point.
			continue
		case err != nil:
			return SubnetHistory{}, fmt.Errorf("history of %s: %w", key, err)
		case len(resp.Kvs) > 0:
			kv := resp.Kvs[0]
			h.Entries = append(h.Entries, historyEntry(kv.ModRevision, kv.Lease, kv.Value))
		}
		from = compacted + 1
	}
}

// replay watches key from revision from and returns its events up to revision to. When from is
// compacted away it returns the compaction revision instead.
func (m *Manager) replay(ctx context.Context, key string, from, to int64) ([]HistoryEntry, int64, error) {
	if from > to {
		return nil, 0, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := m.cli.Watch(wctx, key, clientv3.WithRev(from), clientv3.WithCreatedNotify())
	poll := time.NewTicker(historyPoll)
	defer poll.Stop()
	var out []HistoryEntry
	for {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-poll.C:
			// Answered only once the watch has sent every event up to the current revision.
			if err := m.cli.RequestProgress(wctx); err != nil {
				return nil, 0, err
			}
		case wr, ok := <-wch:
			if !ok {
				return nil, 0, fmt.Errorf("watch from revision %d closed", from)
			}
			if wr.CompactRevision != 0 {
				return nil, wr.CompactRevision, nil
			}
			if err := wr.Err(); err != nil {
				return nil, 0, err
			}
			for _, ev := range wr.Events {
				rev := ev.Kv.ModRevision
				if rev > to {
					return out, 0, nil
				}
				if ev.Type == clientv3.EventTypeDelete {
					out = append(out, HistoryEntry{Revision: rev, Deleted: true})
				} else {
					out = append(out, historyEntry(rev, ev.Kv.Lease, slices.Clone(ev.Kv.Value)))
				}
				if rev == to {
					return out, 0, nil
				}
			}
			if wr.IsProgressNotify() && wr.Header.Revision >= to {
				return out, 0, nil
			}
		}
	}
}
