package gossip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// maxJoinAddrs is how many addresses one join round contacts at most, concurrently.
const maxJoinAddrs = 5

// MemberStatus is a gossip member's state as the failure detector sees it.
type MemberStatus string

// Member states. A suspect member is still alive until the suspicion times out.
const (
	StatusAlive MemberStatus = "alive"
	// StatusGone: the member left or failed. memberlist's leave event does not say which (the
	// state field of the node it passes is never set).
	StatusGone MemberStatus = "gone"
)

// MemberState is what gossip says about one member.
type MemberState struct {
	// Name is the member name.
	Name string
	// Addr is the member's gossip address.
	Addr netip.AddrPort
	// Status tells whether the member is alive or gone.
	Status MemberStatus
	// Meta is the member's advertised meta; nil when MetaErr is set.
	Meta *Meta
	// MetaErr says why the member's meta is missing or unusable.
	MetaErr error
}

// Observer receives gossip member events: joins, meta updates, leaves and failures, for every
// member including the local one. Member calls ObserveMember from memberlist's event path, one
// call at a time and in order, while memberlist holds its member lock: it must return quickly and
// must not call the Member.
type Observer interface {
	ObserveMember(MemberState)
}

// Admitter decides, for every alive message memberlist receives about another member (a join, a
// meta change, a refutation, a relayed rumour), whether that member may be or stay a member; an
// error refuses the message, so a refused member never enters the member list and cannot take a
// real node's name. Admit runs under memberlist's member lock on its hot path: it must do no I/O
// and return quickly. meta is the member's raw meta.
type Admitter interface {
	Admit(name string, addr netip.AddrPort, meta []byte) error
}

// MemberStats is a snapshot of a Member's gauges and counters, for metrics.
type MemberStats struct {
	// Members counts alive members, this one included; 0 before Run.
	Members int
	// HealthScore is memberlist's local health (awareness) score; 0 is healthy, higher means this
	// node is slow to answer probes and widens its timeouts.
	HealthScore int
	// JoinRounds counts join rounds (up to 5 addresses each); JoinFailures those that reached no
	// address.
	JoinRounds   uint64
	JoinFailures uint64
	// MetaUpdates counts meta broadcasts after SetMeta.
	MetaUpdates uint64
	// Keys is the number of keys in the keyring (0 without encryption); PrimaryKeyID identifies the
	// primary key (first 8 hex digits of its SHA-256), to compare nodes during a rotation.
	Keys         int
	PrimaryKeyID string
	// KeyReloads counts successful ReloadKeys calls.
	KeyReloads uint64
	// Refused counts alive messages the Admitter (or the own-name check) refused; RefusedMembers
	// how many distinct members were refused in the last RefusedWindow (at most MaxRefused).
	Refused        uint64
	RefusedMembers int
}

// Member runs this node's memberlist instance.
type Member struct {
	cfg     Config
	log     *slog.Logger
	obs     Observer
	keyring *memberlist.Keyring

	metaKick chan struct{}
	joinKick chan struct{}
	joining  atomic.Bool
	keyMu    sync.Mutex

	joinRounds, joinFailures, metaUpdates, keyReloads, refusedTotal atomic.Uint64
	refused                                                         refusals

	mu        sync.Mutex
	started   bool
	ml        *memberlist.Memberlist
	meta      []byte
	joinAddrs []netip.AddrPort
	// alive holds the addresses of the alive members, by name, from memberlist's events (reading
	// memberlist's Node values outside its event path races with its updates).
	aliveMu sync.Mutex
	alive   map[string]string
}

// NewMember validates the config and loads the key file. obs receives member events; it may be nil.
func NewMember(cfg Config, obs Observer) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Join = slices.Clone(cfg.Join)
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	m := &Member{
		cfg:      cfg,
		log:      l.With("component", "gossip"),
		obs:      obs,
		metaKick: make(chan struct{}, 1),
		joinKick: make(chan struct{}, 1),
	}
	if cfg.KeyFile != "" {
		keys, loose, err := readKeyFile(cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		if loose {
			m.log.Warn("gossip key file is readable by group or others", "file", cfg.KeyFile)
		}
		if m.keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidKeyFile, cfg.KeyFile, err)
		}
	}
	return m, nil
}

// Addr returns the gossip address other members reach this one at, to be written into the lease.
func (m *Member) Addr() netip.AddrPort { return m.cfg.Advertise() }

// Run starts memberlist, joins the cluster in the background and keeps retrying while this member
// is alone, until ctx is done; then it leaves (unless Config.SkipLeave) and shuts memberlist down.
// Stopping waits for a join round or meta broadcast in flight (at most TCPTimeout or
// BroadcastTimeout) and for the leave broadcast (at most BroadcastTimeout). A Member runs once.
func (m *Member) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return ErrStarted
	}
	m.started = true
	m.mu.Unlock()

	ml, err := memberlist.Create(m.memberlistConfig())
	if err != nil {
		return fmt.Errorf("gossip: start memberlist on %s:%d: %w", m.cfg.BindAddr, m.cfg.BindPort, err)
	}
	m.mu.Lock()
	m.ml = ml
	m.mu.Unlock()
	if m.keyring == nil {
		m.log.Warn("gossip runs without encryption: no key file configured; anyone who reaches the gossip port can join")
	}
	m.log.Info("gossip started", "node", m.cfg.NodeName, "addr", m.Addr(), "label", m.cfg.Label,
		"keys", m.keyCount())

	var wg sync.WaitGroup
	wg.Go(func() { m.metaLoop(ctx, ml) })
	m.maybeJoin(&wg, ml)
	retry := time.NewTicker(m.cfg.JoinRetryInterval)
	defer retry.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-m.joinKick:
			m.maybeJoin(&wg, ml)
		case <-retry.C:
			m.maybeJoin(&wg, ml)
		}
	}
	wg.Wait()
	if !m.cfg.SkipLeave {
		if err := ml.Leave(m.cfg.BroadcastTimeout); err != nil {
			m.log.Debug("gossip leave broadcast not confirmed", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		return fmt.Errorf("gossip: shut down memberlist: %w", err)
	}
	m.log.Info("gossip stopped", "left", !m.cfg.SkipLeave)
	return nil
}

func (m *Member) memberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	adv := m.Addr()
	c.Name = m.cfg.NodeName
	c.BindAddr = m.cfg.BindAddr.String()
	c.BindPort = m.cfg.BindPort
	c.AdvertiseAddr = adv.Addr().String()
	c.AdvertisePort = int(adv.Port())
	c.Label = m.cfg.Label
	c.Keyring = m.keyring
	c.ProbeInterval = m.cfg.ProbeInterval
	c.ProbeTimeout = m.cfg.ProbeTimeout
	c.IndirectChecks = m.cfg.IndirectChecks
	c.SuspicionMult = m.cfg.SuspicionMult
	c.SuspicionMaxTimeoutMult = m.cfg.SuspicionMaxTimeoutMult
	c.GossipInterval = m.cfg.GossipInterval
	c.GossipNodes = m.cfg.GossipNodes
	c.RetransmitMult = m.cfg.RetransmitMult
	c.PushPullInterval = m.cfg.PushPullInterval
	c.GossipToTheDeadTime = m.cfg.GossipToTheDeadTime
	c.DeadNodeReclaimTime = m.cfg.DeadNodeReclaimTime
	c.TCPTimeout = m.cfg.TCPTimeout
	d := delegate{m}
	c.Delegate = d
	c.Events = d
	c.Conflict = d
	c.Alive = d
	c.Logger = memberlistLogger(m.log)
	return c
}

// SetMeta sets the meta this member advertises and broadcasts it when it changed. It can be called
// before Run. meta.NodeName must be the member's name.
func (m *Member) SetMeta(meta Meta) error {
	if meta.NodeName != m.cfg.NodeName {
		return fmt.Errorf("%w: NodeName=%q: must be the member name %q", ErrInvalidMeta, meta.NodeName, m.cfg.NodeName)
	}
	var b []byte
	var err error
	if m.cfg.NodeKey != nil {
		b, err = meta.Sign(m.cfg.NodeKey, m.Addr())
	} else {
		b, err = meta.MarshalBinary()
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	changed := !bytes.Equal(m.meta, b)
	m.meta = b
	m.mu.Unlock()
	if changed {
		kick(m.metaKick)
	}
	return nil
}

// metaLoop broadcasts the meta after each change. UpdateNode blocks until the broadcast has gone
// out, so changes made meanwhile are coalesced into the next round.
func (m *Member) metaLoop(ctx context.Context, ml *memberlist.Memberlist) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.metaKick:
		}
		if err := ml.UpdateNode(m.cfg.BroadcastTimeout); err != nil {
			m.log.Debug("gossip meta broadcast not confirmed", "err", err)
		}
		m.metaUpdates.Add(1)
	}
}

// JoinAddrs sets the gossip addresses to join, typically those found in the etcd leases; it
// replaces the previous set. While some of these addresses (or Config.Join) are not members — the
// member is alone, or the cluster is split — it starts a join round in the background at once and
// then every JoinRetryInterval; each round contacts up to 5 random such addresses concurrently.
// Joining a member of another group merges the groups, so partitions heal.
func (m *Member) JoinAddrs(addrs []netip.AddrPort) {
	valid := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() && a.Port() != 0 && !slices.Contains(valid, a) {
			valid = append(valid, a)
		}
	}
	m.mu.Lock()
	m.joinAddrs = valid
	m.mu.Unlock()
	kick(m.joinKick)
}

// maybeJoin starts a join round when some known address is not a member and no round is running.
func (m *Member) maybeJoin(wg *sync.WaitGroup, ml *memberlist.Memberlist) {
	if !m.joining.CompareAndSwap(false, true) {
		return
	}
	members := make(map[string]bool)
	m.aliveMu.Lock()
	for _, a := range m.alive {
		members[a] = true
	}
	m.aliveMu.Unlock()
	addrs := m.joinCandidates(members)
	if len(addrs) == 0 {
		m.joining.Store(false)
		return
	}
	alone := len(members) <= 1
	wg.Go(func() {
		defer m.joining.Store(false)
		m.joinRound(ml, addrs, alone)
	})
}

// joinCandidates returns up to 5 random known addresses that are neither this member nor one of
// members.
func (m *Member) joinCandidates(members map[string]bool) []string {
	self := m.Addr().String()
	m.mu.Lock()
	all := slices.Clone(m.cfg.Join)
	for _, a := range m.joinAddrs {
		all = append(all, a.String())
	}
	m.mu.Unlock()
	all = slices.DeleteFunc(all, func(a string) bool { return a == self || members[a] })
	slices.Sort(all)
	all = slices.Compact(all)
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(len(all), maxJoinAddrs)]
}

// joinRound contacts every address concurrently; one success is enough, memberlist's push/pull
// brings the rest of the cluster.
// A member that is not alone logs failures at debug level only: leases of dead nodes live for hours.
func (m *Member) joinRound(ml *memberlist.Memberlist, addrs []string, alone bool) {
	m.joinRounds.Add(1)
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			if _, err := ml.Join([]string{a}); err != nil {
				errs[i] = fmt.Errorf("%s: %w", a, err)
			}
		})
	}
	wg.Wait()
	joined := slices.ContainsFunc(errs, func(err error) bool { return err == nil })
	if !joined {
		m.joinFailures.Add(1)
		level := slog.LevelDebug
		if alone {
			level = slog.LevelWarn
		}
		m.log.Log(context.Background(), level, "gossip join failed, retrying", "addrs", addrs,
			"retry", m.cfg.JoinRetryInterval, "err", errors.Join(errs...))
		return
	}
	m.log.Info("gossip joined", "addrs", addrs, "members", ml.NumMembers())
}

// ReloadKeys re-reads the key file and makes the keyring match it without a partition: keys new
// in the file are installed, the file's first key becomes primary, and keys no longer in the file
// are removed. On error the keyring is left as it was. The daemon calls it on SIGHUP.
func (m *Member) ReloadKeys() error {
	if m.keyring == nil {
		return fmt.Errorf("%w: encryption stays off until a restart with a key file", ErrNoKeyFile)
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	keys, loose, err := readKeyFile(m.cfg.KeyFile)
	if err != nil {
		return err
	}
	if loose {
		m.log.Warn("gossip key file is readable by group or others", "file", m.cfg.KeyFile)
	}
	if err := rotateKeyring(m.keyring, keys); err != nil {
		return err
	}
	m.keyReloads.Add(1)
	m.log.Info("gossip keys reloaded", "keys", len(keys), "primary", KeyID(keys[0]))
	return nil
}

func (m *Member) keyCount() int {
	if m.keyring == nil {
		return 0
	}
	return len(m.keyring.GetKeys())
}

// KeyID identifies a key in logs and stats: the first 8 hex digits of its SHA-256.
func KeyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// Stats returns the member's current gauges and counters.
func (m *Member) Stats() MemberStats {
	m.mu.Lock()
	ml := m.ml
	m.mu.Unlock()
	s := MemberStats{
		JoinRounds:     m.joinRounds.Load(),
		JoinFailures:   m.joinFailures.Load(),
		MetaUpdates:    m.metaUpdates.Load(),
		KeyReloads:     m.keyReloads.Load(),
		Refused:        m.refusedTotal.Load(),
		RefusedMembers: m.refused.count(time.Now()),
		Keys:           m.keyCount(),
	}
	if m.keyring != nil {
		s.PrimaryKeyID = KeyID(m.keyring.GetPrimaryKey())
	}
	if ml != nil {
		s.Members = ml.NumMembers()
		s.HealthScore = ml.GetHealthScore()
	}
	return s
}

// delegate implements memberlist's Delegate, EventDelegate, ConflictDelegate and AliveDelegate
// for a Member.
type delegate struct{ m *Member }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.meta) > limit {
		return nil
	}
	return d.m.meta
}

func (delegate) NotifyMsg([]byte)                  {}
func (delegate) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (delegate) LocalState(bool) []byte            { return nil }
func (delegate) MergeRemoteState(_ []byte, _ bool) {}
func (d delegate) NotifyJoin(n *memberlist.Node)   { d.notify(n, StatusAlive) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.notify(n, StatusAlive) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.notify(n, StatusGone) }

// NotifyAlive admits or refuses an alive message. This node's own name is admitted only at this
// node's own address; any other member goes to the Admitter.
func (d delegate) NotifyAlive(n *memberlist.Node) error {
	addr := nodeAddr(n)
	var err error
	switch {
	case n.Name == d.m.cfg.NodeName && addr != d.m.Addr():
		err = fmt.Errorf("this node's own name, announced at %s", addr)
	case n.Name == d.m.cfg.NodeName || d.m.cfg.Admit == nil:
		return nil
	default:
		err = d.m.cfg.Admit.Admit(n.Name, addr, n.Meta)
	}
	if err == nil {
		return nil
	}
	d.m.refusedTotal.Add(1)
	if d.m.refused.note(n.Name, addr, time.Now()) {
		d.m.log.Warn("gossip member refused", "node", n.Name, "addr", addr, "err", err)
	}
	return fmt.Errorf("%w: %w", ErrRefused, err)
}

func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.log.Warn("gossip member name in use at two addresses", "node", existing.Name,
		"addr", existing.Address(), "other_addr", other.Address())
}

func (d delegate) notify(n *memberlist.Node, status MemberStatus) {
	s := memberState(n, status)
	d.m.aliveMu.Lock()
	if d.m.alive == nil {
		d.m.alive = make(map[string]string)
	}
	if status == StatusAlive {
		d.m.alive[s.Name] = s.Addr.String()
	} else {
		delete(d.m.alive, s.Name)
	}
	d.m.aliveMu.Unlock()
	if s.MetaErr != nil && s.Name != d.m.cfg.NodeName && s.Status == StatusAlive {
		d.m.log.Warn("gossip member meta unusable", "node", s.Name, "addr", s.Addr, "err", s.MetaErr)
	}
	if d.m.obs != nil {
		d.m.obs.ObserveMember(s)
	}
}

func memberState(n *memberlist.Node, status MemberStatus) MemberState {
	s := MemberState{Name: n.Name, Status: status, Addr: nodeAddr(n)}
	if len(n.Meta) == 0 {
		s.MetaErr = fmt.Errorf("%w: member advertises none", ErrInvalidMeta)
	} else {
		s.Meta, s.MetaErr = ParseMeta(n.Meta)
	}
	return s
}

// nodeAddr is the address a memberlist node announces; invalid when it announces none.
func nodeAddr(n *memberlist.Node) netip.AddrPort {
	a, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// kick makes a pending signal on a channel of capacity 1, without blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
