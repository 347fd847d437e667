package etcd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
)

// entry is one key under SubnetsPrefix.
type entry struct {
	kv     *mvccpb.KeyValue
	subnet netip.Prefix // invalid when the key does not name a subnet
	id     subnet.LeaseIdentity
}

// view is the set of lease keys at one revision.
type view []entry

func (m *Manager) newView(kvs []*mvccpb.KeyValue) view {
	v := make(view, 0, len(kvs))
	for _, kv := range kvs {
		s, _ := m.keySubnet(string(kv.Key))
		v = append(v, entry{kv: kv, subnet: s, id: readIdentity(kv.Value)})
	}
	return v
}

// occupancy tells which subnets of length bits the keys of a view leave free. Every key that names
// a subnet occupies it, whatever its value.
type occupancy struct {
	exact map[netip.Prefix]bool
	other []netip.Prefix
}

func (v view) occupancy(bits int) occupancy {
	o := occupancy{exact: make(map[netip.Prefix]bool, len(v))}
	for _, e := range v {
		switch {
		case !e.subnet.IsValid():
		case e.subnet.Bits() == bits:
			o.exact[e.subnet] = true
		default:
			o.other = append(o.other, e.subnet)
		}
	}
	return o
}

func (o occupancy) free(p netip.Prefix) bool {
	if o.exact[p] {
		return false
	}
	for _, q := range o.other {
		if q.Overlaps(p) {
			return false
		}
	}
	return true
}

// probes is how many random subnets choose tries before it lists every free one.
const probes = 32

// choose picks preferred when it is allocatable and free, else a random free subnet.
func choose(v view, cfg *subnet.Config, preferred netip.Prefix) (netip.Prefix, bool) {
	o := v.occupancy(cfg.SubnetLen)
	if preferred.IsValid() && cfg.Allocatable(preferred) && o.free(preferred) {
		return preferred, true
	}
	n := cfg.SubnetCount()
	for range probes {
		if s := cfg.SubnetAt(rand.N(n)); o.free(s) {
			return s, true
		}
	}
	var free []netip.Prefix
	for i := range n {
		if s := cfg.SubnetAt(i); o.free(s) {
			free = append(free, s)
		}
	}
	if len(free) == 0 {
		return netip.Prefix{}, false
	}
	return free[rand.N(len(free))], true
}

// owns reports whether a value names this node: by node name, or, for a value flannel wrote (no
// node name), by public IP.
func (m *Manager) owns(id subnet.LeaseIdentity, publicIP netip.Addr) bool {
	if id.NodeName != "" {
		return id.NodeName == m.opts.NodeName
	}
	return id.PublicIP != "" && id.PublicIP == publicIP.String()
}

// pickOwn finds the key this node already holds that suits cfg: a reservation first, then the
// subnet of the local state, then the oldest. It returns the other keys the node holds that are not
// reservations: stale leftovers to delete once the node has its subnet.
func (m *Manager) pickOwn(v view, cfg *subnet.Config, publicIP netip.Addr, st *localState) (own *entry, stale []*entry) {
	rank := func(e *entry) int {
		switch {
		case e.kv.Lease == 0:
			return 0
		case st != nil && e.subnet == st.Subnet:
			return 1
		}
		return 2
	}
	var usable []*entry
	for i := range v {
		e := &v[i]
		if !e.subnet.IsValid() || !m.owns(e.id, publicIP) {
			continue
		}
		switch {
		case string(e.kv.Key) != m.SubnetKey(e.subnet):
			m.log.Warn("ignoring a key of this node in a form weft does not write", "key", string(e.kv.Key))
		case cfg.Covers(e.subnet):
			usable = append(usable, e)
		case e.kv.Lease == 0:
			m.log.Warn("ignoring a reservation of this node that does not fit the network config", "key", string(e.kv.Key), "network", cfg.Network, "subnet_len", cfg.SubnetLen)
		default:
			stale = append(stale, e)
		}
	}
	if len(usable) == 0 {
		return nil, stale
	}
	slices.SortFunc(usable, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.kv.CreateRevision, b.kv.CreateRevision))
	})
	for _, e := range usable[1:] {
		if e.kv.Lease != 0 {
			stale = append(stale, e)
		}
	}
	return usable[0], stale
}

// Acquire gets this node a subnet of cfg and writes attrs (with the node name, format version,
// AttrVersion and AcquiredAt filled in) as its value. In order, it takes: the key this node already
// holds (a reservation is kept without a TTL; a lease keeps its etcd lease), the subnet of the local
// state file if it is free, a random free subnet. A new key is attached to the etcd lease of the
// local state while that lease lives, else to a new one with Options.TTL. When another node wins a
// subnet first, Acquire re-lists and tries again; ErrNoFreeSubnet means the listing shows every
// allocatable subnet taken. The local state file is updated on success.
func (m *Manager) Acquire(ctx context.Context, cfg *subnet.Config, attrs subnet.LeaseAttrs) (*subnet.Lease, error) {
	if m.opts.NodeName == "" {
		return nil, fmt.Errorf("%w: NodeName is empty: Acquire needs the node's name", ErrInvalidOptions)
	}
	if cfg == nil {
		return nil, fmt.Errorf("%w: no network config given", subnet.ErrInvalidConfig)
	}
	attrs.NodeName = m.opts.NodeName
	attrs.Format = subnet.LeaseFormat
	attrs.VtepMAC = slices.Clone(attrs.VtepMAC)
	if err := attrs.Validate(); err != nil {
		return nil, fmt.Errorf("lease attributes: %w", err)
	}
	st := m.readState()
	var preferred netip.Prefix
	if st != nil {
		preferred = st.Subnet
	}
	g := grant{m: m, st: st}
	defer g.releaseUnused()

	v, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	for {
		var l *subnet.Lease
		own, stale := m.pickOwn(v, cfg, attrs.PublicIP, st)
		if own != nil {
			l, v, err = m.reuse(ctx, own, attrs)
		} else {
			s, ok := choose(v, cfg, preferred)
			if !ok {
				m.deleteStale(ctx, stale)
				return nil, fmt.Errorf("%w in %s: all %d subnets /%d from %s to %s are taken",
					ErrNoFreeSubnet, cfg.Network, cfg.SubnetCount(), cfg.SubnetLen, cfg.SubnetMin, cfg.SubnetMax)
			}
			var id, ttl int64
			if id, ttl, err = g.get(ctx); err != nil {
				return nil, err
			}
			l, v, err = m.create(ctx, s, id, ttl, attrs)
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The etcd lease of the local state or of the own key expired just now: look again
			// (the own key is gone with it) and take a new etcd lease.
			g.drop()
			v, err = m.list(ctx)
		}
		if err != nil {
			return nil, err
		}
		if l == nil {
			continue
		}
		g.used(l.EtcdLease)
		m.deleteStale(ctx, stale)
		if err := m.writeState(l); err != nil {
			return nil, fmt.Errorf("acquired %s but %w", l.Subnet, err)
		}
		m.log.Info("acquired subnet", "subnet", l.Subnet, "etcd_lease", fmt.Sprintf("%x", l.EtcdLease), "reserved", l.Reserved(), "expiry", l.Expiry)
		return l, nil
	}
}

// list reads every key under SubnetsPrefix.
func (m *Manager) list(ctx context.Context) (view, error) {
	resp, err := m.cli.Get(ctx, m.SubnetsPrefix(), clientv3.WithPrefix())
	m.observe(err)
	if err != nil {
		return nil, fmt.Errorf("listing leases under %s: %w", m.SubnetsPrefix(), err)
	}
	return m.newView(resp.Kvs), nil
}

// create writes a new key for s if no key exists for it. When another node was first, it returns no
// lease and the listing at that moment.
func (m *Manager) create(ctx context.Context, s netip.Prefix, id, ttl int64, attrs subnet.LeaseAttrs) (*subnet.Lease, view, error) {
	key := m.SubnetKey(s)
	now := time.Now().UTC()
	attrs.AcquiredAt = now
	attrs.AttrVersion = now.UnixNano()
	val, err := attrs.MarshalJSON()
	if err != nil {
		return nil, nil, err
	}
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(clientv3.LeaseID(id)))).
		Else(clientv3.OpGet(m.SubnetsPrefix(), clientv3.WithPrefix())).
		Commit()
	m.observe(err)
	if err != nil {
		return nil, nil, fmt.Errorf("creating %s: %w", key, err)
	}
	if !resp.Succeeded {
		return nil, m.newView(resp.Responses[0].GetResponseRange().Kvs), nil
	}
	return &subnet.Lease{
		Subnet: s, Attrs: attrs, EtcdLease: id, ModRevision: resp.Header.Revision,
		Expiry: now.Add(time.Duration(ttl) * time.Second),
	}, nil, nil
}

// reuse takes over a key this node holds, rewriting its value when the attributes changed. When the
// key changed under it, it returns no lease and the listing at that moment.
func (m *Manager) reuse(ctx context.Context, own *entry, attrs subnet.LeaseAttrs) (*subnet.Lease, view, error) {
	key := string(own.kv.Key)
	now := time.Now().UTC()
	attrs.AcquiredAt = now
	attrs.AttrVersion = now.UnixNano()
	old, perr := subnet.ParseLeaseAttrs(own.kv.Value)
	if perr == nil && old.NodeName == attrs.NodeName {
		if !old.AcquiredAt.IsZero() {
			attrs.AcquiredAt = old.AcquiredAt
		}
		if sameAttrs(old, &attrs) {
			attrs.AttrVersion = old.AttrVersion
		} else {
			attrs.AttrVersion = nextAttrVersion(old.AttrVersion)
		}
	}
	l := &subnet.Lease{Subnet: own.subnet, Attrs: attrs, EtcdLease: own.kv.Lease, ModRevision: own.kv.ModRevision}
	if perr != nil || !old.Equal(&attrs) {
		val, err := attrs.MarshalJSON()
		if err != nil {
			return nil, nil, err
		}
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", own.kv.ModRevision)).
			Then(clientv3.OpPut(key, string(val), leaseOpts(own.kv.Lease)...)).
			Else(clientv3.OpGet(m.SubnetsPrefix(), clientv3.WithPrefix())).
			Commit()
		m.observe(err)
		if err != nil {
			return nil, nil, fmt.Errorf("updating %s: %w", key, err)
		}
		if !resp.Succeeded {
			return nil, m.newView(resp.Responses[0].GetResponseRange().Kvs), nil
		}
		l.ModRevision = resp.Header.Revision
	}
	if l.EtcdLease != 0 {
		resp, err := m.cli.TimeToLive(ctx, clientv3.LeaseID(l.EtcdLease))
		m.observe(err)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the etcd lease of %s: %w", key, err)
		}
		l.Expiry = now.Add(time.Duration(resp.TTL) * time.Second)
	}
	return l, nil, nil
}

// leaseOpts attaches a put to etcd lease id, or to none for a reservation.
func leaseOpts(id int64) []clientv3.OpOption {
	if id == 0 {
		return nil
	}
	return []clientv3.OpOption{clientv3.WithLease(clientv3.LeaseID(id))}
}

// deleteStale deletes, unless they changed meanwhile, keys this node holds besides its subnet.
func (m *Manager) deleteStale(ctx context.Context, stale []*entry) {
	for _, e := range stale {
		key := string(e.kv.Key)
		_, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", e.kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		m.observe(err)
		if err != nil {
			m.log.Warn("could not delete a stale key of this node", "key", key, "err", err)
			continue
		}
		m.log.Info("deleted a stale key of this node", "key", key)
	}
}

// grant hands out the etcd lease that a new key is attached to: the one of the local state while it
// lives, else a new one. A new lease that ends up unused is revoked.
type grant struct {
	m        *Manager
	st       *localState
	id, ttl  int64
	fresh    bool
	haveOne  bool
	consumed bool
}

func (g *grant) get(ctx context.Context) (id, ttl int64, err error) {
	if g.haveOne {
		return g.id, g.ttl, nil
	}
	if g.st != nil && g.st.EtcdLease != 0 {
		resp, err := g.m.cli.TimeToLive(ctx, clientv3.LeaseID(g.st.EtcdLease))
		g.m.observe(err)
		switch {
		case err == nil && resp.TTL > 0:
			g.id, g.ttl, g.haveOne = g.st.EtcdLease, resp.TTL, true
			return g.id, g.ttl, nil
		case err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, 0, fmt.Errorf("checking etcd lease %x of the local state: %w", g.st.EtcdLease, err)
		}
		g.m.log.Info("etcd lease of the local state is gone; granting a new one", "etcd_lease", fmt.Sprintf("%x", g.st.EtcdLease))
		g.st.EtcdLease = 0
	}
	resp, err := g.m.cli.Grant(ctx, int64(g.m.opts.TTL/time.Second))
	g.m.observe(err)
	if err != nil {
		return 0, 0, fmt.Errorf("granting an etcd lease: %w", err)
	}
	g.id, g.ttl, g.fresh, g.haveOne = int64(resp.ID), resp.TTL, true, true
	return g.id, g.ttl, nil
}

// drop forgets a lease found expired.
func (g *grant) drop() {
	if g.st != nil && g.st.EtcdLease == g.id {
		g.st.EtcdLease = 0
	}
	g.haveOne, g.fresh = false, false
}

// used records the etcd lease the acquired key got.
func (g *grant) used(id int64) { g.consumed = g.haveOne && id == g.id }

func (g *grant) releaseUnused() {
	if !g.fresh || g.consumed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.m.opts.RequestTimeout)
	defer cancel()
	if _, err := g.m.cli.Revoke(ctx, clientv3.LeaseID(g.id)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		g.m.log.Warn("could not revoke an unused etcd lease; it expires by itself", "etcd_lease", fmt.Sprintf("%x", g.id), "err", err)
	}
}

// UpdateAttrs rewrites the value of a lease this node holds with new attributes (a new VTEP MAC,
// public IP or gossip address), keeping its etcd lease and AcquiredAt and raising AttrVersion. The
// write only happens while the key is unchanged since l.ModRevision or still names this node; a key
// deleted or held by someone else gives an error wrapping ErrLeaseLost. attrs are compared with
// l.Attrs, so pass the lease Acquire or UpdateAttrs returned last: unchanged attributes write
// nothing. It returns the updated lease.
func (m *Manager) UpdateAttrs(ctx context.Context, l *subnet.Lease, attrs subnet.LeaseAttrs) (*subnet.Lease, error) {
	attrs.NodeName = m.opts.NodeName
	attrs.Format = subnet.LeaseFormat
	attrs.VtepMAC = slices.Clone(attrs.VtepMAC)
	attrs.AcquiredAt = l.Attrs.AcquiredAt
	attrs.AttrVersion = l.Attrs.AttrVersion
	if err := attrs.Validate(); err != nil {
		return nil, fmt.Errorf("lease attributes: %w", err)
	}
	out := *l
	if sameAttrs(&l.Attrs, &attrs) {
		return &out, nil
	}
	attrs.AttrVersion = nextAttrVersion(l.Attrs.AttrVersion)
	val, err := attrs.MarshalJSON()
	if err != nil {
		return nil, err
	}
	key := m.SubnetKey(l.Subnet)
	for {
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", out.ModRevision)).
			Then(clientv3.OpPut(key, string(val), leaseOpts(out.EtcdLease)...)).
			Else(clientv3.OpGet(key)).
			Commit()
		m.observe(err)
		if err != nil {
			return nil, fmt.Errorf("updating %s: %w", key, err)
		}
		if resp.Succeeded {
			out.Attrs = attrs
			out.ModRevision = resp.Header.Revision
			m.log.Info("updated lease attributes", "subnet", l.Subnet, "attr_version", attrs.AttrVersion)
			return &out, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, fmt.Errorf("%w: %s: key %s was deleted", ErrLeaseLost, l.Subnet, key)
		}
		if id := readIdentity(kvs[0].Value); id.NodeName != m.opts.NodeName {
			return nil, fmt.Errorf("%w: %s: key %s is now held by %s", ErrLeaseLost, l.Subnet, key, id.Holder())
		}
		// Still this node's key, written meanwhile (or made a reservation by an admin): write over
		// the revision read.
		out.ModRevision, out.EtcdLease = kvs[0].ModRevision, kvs[0].Lease
	}
}
