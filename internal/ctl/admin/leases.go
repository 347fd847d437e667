// Package admin is weftctl's etcd administration: the leases commands (list, get, history, reserve,
// reclaim, check, import), the config commands (get, set, validate) and etcd-role. Every read and
// write goes through subnet/etcd.
package admin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

func Leases(ctx context.Context, env *cli.Env, args []string) error {
	return cli.RunGroup(ctx, env, "leases", []cli.Subcommand{
		{Name: "list", Synopsis: "[flags]", Summary: "every subnet key: holder, addresses, expiry; malformed keys flagged", Run: runLeasesList},
		{Name: "get", Synopsis: "SUBNET [flags]", Summary: "one subnet's key in detail", Run: runLeasesGet},
		{Name: "history", Synopsis: "SUBNET [flags]", Summary: "who held a subnet at which etcd revision", Run: runLeasesHistory},
		{Name: "reserve", Synopsis: "SUBNET -node NAME -public-ip IP [flags]", Summary: "reserve a subnet for a node (no TTL)", Run: runLeasesReserve},
		{Name: "reclaim", Synopsis: "SUBNET [-yes] [flags]", Summary: "free a subnet: delete its key and revoke its etcd lease", Run: runLeasesReclaim},
		{Name: "check", Synopsis: "[flags]", Summary: "find overlaps, duplicates, malformed values and leases outside the config", Run: runLeasesCheck},
		{Name: "import", Synopsis: "-from PREFIX [-apply] [flags]", Summary: "copy a flannel prefix's config and leases into weft's prefix", Run: runLeasesImport},
	}, args)
}

// Entry is one key under <prefix>/subnets/ as weftctl reads it.
type Entry struct {
	Key string
	// Subnet is the subnet the key names; invalid when the key does not parse.
	Subnet netip.Prefix
	// Lease is the parsed value; nil when it does not parse.
	Lease *subnet.Lease
	// Node and PublicIP are read leniently from a value that does not parse.
	Node     string
	PublicIP netip.Addr
	// Pending marks a reservation its node has not taken yet: it names the node and its address but
	// not the VTEP MAC, which the node writes when it takes the subnet.
	Pending   bool
	EtcdLease int64
	// Expiry is when the etcd lease runs out; zero for a reservation or a lease gone meanwhile.
	Expiry      time.Time
	ModRevision int64
	// Err says why the key or its value does not parse; nil for a pending reservation.
	Err error
	// Value is the raw value of a key whose value does not parse.
	Value []byte
}

func (e *Entry) reserved() bool { return e.EtcdLease == 0 }

// Holder is the holder's node name, or "(flannel)" for a value flannel wrote.
func (e *Entry) Holder() string {
	switch {
	case e.Lease != nil && e.Lease.Attrs.NodeName != "":
		return e.Lease.Attrs.NodeName
	case e.Lease != nil:
		return "(flannel)"
	}
	return e.Node
}

// nodeName is the node the value names; empty for a flannel-written value.
func (e *Entry) nodeName() string {
	if e.Lease != nil {
		return e.Lease.Attrs.NodeName
	}
	return e.Node
}

func (e *Entry) publicIP() netip.Addr {
	if e.Lease != nil {
		return e.Lease.Attrs.PublicIP
	}
	return e.PublicIP
}

// malformedEntry describes a key whose name or value does not parse, with its raw value.
func malformedEntry(bad weftetcd.Malformed, value []byte) Entry {
	e := Entry{Key: bad.Key, Subnet: bad.Subnet, EtcdLease: bad.EtcdLease, ModRevision: bad.ModRevision, Err: bad.Err, Value: value}
	// A value with a bad field still yields the fields that decode.
	id, _ := subnet.ReadLeaseIdentity(value)
	e.Node, e.PublicIP = id.NodeName, id.Addr()
	if e.Subnet.IsValid() && e.EtcdLease == 0 && id.Pending() {
		e.Pending, e.Err = true, nil
	}
	return e
}

// ReadKeys reads every key under the subnets prefix, with the expiry of each etcd lease, sorted by
// subnet (keys naming none last) and key.
func ReadKeys(ctx context.Context, s *cli.Session) ([]Entry, int64, error) {
	var out []Entry
	var rev int64
	err := s.Do(ctx, func(ctx context.Context) error {
		set, err := s.M.List(ctx)
		if err != nil {
			return err
		}
		if err := s.M.FillExpiry(ctx, &set); err != nil {
			return err
		}
		rev = set.Revision
		keys, _, err := s.M.Keys(ctx, rev)
		if err != nil {
			return err
		}
		out, err = joinKeys(ctx, s, set, keys)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortStableFunc(out, compareEntries)
	return out, rev, nil
}

// joinKeys joins a lease set with the keys listed at its revision: a lease does not carry its key,
// which a dual-stack key names in another form, and a malformed key's raw value is shown.
func joinKeys(ctx context.Context, s *cli.Session, set weftetcd.LeaseSet, keys []weftetcd.KeyValue) ([]Entry, error) {
	type found struct {
		subnet netip.Prefix
		rev    int64
	}
	keyOf := map[found]string{}
	byKey := map[string]weftetcd.KeyValue{}
	for _, kv := range keys {
		byKey[kv.Key] = kv
		if kv.Subnet.IsValid() {
			keyOf[found{kv.Subnet, kv.ModRevision}] = kv.Key
		}
	}
	var out []Entry
	for i := range set.Leases {
		l := &set.Leases[i]
		key, ok := keyOf[found{l.Subnet, l.ModRevision}]
		if !ok {
			key = s.M.SubnetKey(l.Subnet)
		}
		out = append(out, Entry{Key: key, Subnet: l.Subnet, Lease: l, EtcdLease: l.EtcdLease, Expiry: l.Expiry, ModRevision: l.ModRevision})
	}
	for _, bad := range set.Malformed {
		e := malformedEntry(bad, byKey[bad.Key].Value)
		if e.EtcdLease != 0 {
			left, _, err := s.M.LeaseTTL(ctx, e.EtcdLease)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Key, err)
			}
			if left > 0 {
				e.Expiry = time.Now().Add(left)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func compareEntries(a, b Entry) int {
	switch {
	case a.Subnet.IsValid() != b.Subnet.IsValid():
		if a.Subnet.IsValid() {
			return -1
		}
		return 1
	case a.Subnet.IsValid():
		if c := a.Subnet.Compare(b.Subnet); c != 0 {
			return c
		}
	}
	return strings.Compare(a.Key, b.Key)
}

// parseSubnetArg reads a SUBNET argument: a CIDR (10.244.7.0/24), a key name (10.244.7.0-24) or a
// whole key (/weft/network/subnets/10.244.7.0-24).
func parseSubnetArg(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if k, kerr := subnet.ParseSubnetKey(path.Base(s)); kerr == nil {
			return k, nil
		}
		return netip.Prefix{}, fmt.Errorf("%w: SUBNET %q: want a CIDR like 10.244.7.0/24 or a key name like 10.244.7.0-24", cli.ErrUsage, s)
	}
	switch {
	case !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%w: SUBNET %q: not an IPv4 subnet", cli.ErrUsage, s)
	case p != p.Masked():
		return netip.Prefix{}, fmt.Errorf("%w: SUBNET %q: host bits set (did you mean %s?)", cli.ErrUsage, s, p.Masked())
	}
	return p, nil
}

// leaseView is one key in JSON and YAML output.
type leaseView struct {
	Subnet      string     `json:"subnet,omitempty"`
	Key         string     `json:"key"`
	Node        string     `json:"node,omitempty"`
	Flannel     bool       `json:"flannel,omitempty"`
	PublicIP    string     `json:"publicIP,omitempty"`
	VtepMAC     string     `json:"vtepMAC,omitempty"`
	VNI         int        `json:"vni,omitempty"`
	GossipAddr  string     `json:"gossipAddr,omitempty"`
	AcquiredAt  *time.Time `json:"acquiredAt,omitempty"`
	Reserved    bool       `json:"reserved"`
	Pending     bool       `json:"pending,omitempty"`
	EtcdLease   string     `json:"etcdLease,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	ModRevision int64      `json:"modRevision"`
	Malformed   string     `json:"malformed,omitempty"`
	Value       string     `json:"value,omitempty"`
}

func (e *Entry) view() leaseView {
	v := leaseView{Key: e.Key, Node: e.Node, Reserved: e.reserved(), Pending: e.Pending, ModRevision: e.ModRevision}
	if e.Subnet.IsValid() {
		v.Subnet = e.Subnet.String()
	}
	if e.PublicIP.IsValid() {
		v.PublicIP = e.PublicIP.String()
	}
	if e.EtcdLease != 0 {
		v.EtcdLease = fmt.Sprintf("%x", e.EtcdLease)
	}
	if e.Err != nil {
		v.Malformed, v.Value = e.Err.Error(), string(e.Value)
	}
	if l := e.Lease; l != nil {
		a := &l.Attrs
		v.Node, v.Flannel, v.PublicIP, v.VtepMAC, v.VNI = a.NodeName, a.Format == 0, a.PublicIP.String(), a.VtepMAC.String(), a.VNI
		if a.GossipAddr.IsValid() {
			v.GossipAddr = a.GossipAddr.String()
		}
		if !a.AcquiredAt.IsZero() {
			t := a.AcquiredAt
			v.AcquiredAt = &t
		}
	}
	if !e.Expiry.IsZero() {
		t := e.Expiry.UTC()
		v.Expires = &t
	}
	return v
}

// Expires renders when the key's etcd lease runs out, relative to now.
func (e *Entry) Expires(now time.Time) string {
	switch {
	case e.reserved():
		return "never"
	case e.Expiry.IsZero():
		return "expired"
	}
	d := e.Expiry.Sub(now)
	switch {
	case d <= 0:
		return "expired"
	case d < 2*time.Minute:
		return "in " + d.Round(time.Second).String()
	}
	// Whole minutes, rounded up: a lease renewed a moment ago shows its full TTL.
	d = (d + time.Minute - 1).Truncate(time.Minute)
	return "in " + strings.TrimSuffix(d.String(), "0s")
}

func (e *Entry) reservedCell() string {
	switch {
	case e.Err != nil:
		return ""
	case e.Pending:
		return "yes (not taken yet)"
	case e.reserved():
		return "yes"
	}
	return "no"
}

func (e *Entry) subnetCell() string {
	s := path.Base(e.Key)
	if e.Subnet.IsValid() {
		s = e.Subnet.String()
	}
	if e.Err != nil {
		s += " (!)"
	}
	return s
}

func ipCell(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func runLeasesList(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	s, out, err := listCommand(env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	entries, rev, err := ReadKeys(ctx, s)
	if err != nil {
		return err
	}
	if out.Structured() {
		list := struct {
			Prefix   string      `json:"prefix"`
			Revision int64       `json:"revision"`
			Leases   []leaseView `json:"leases"`
		}{Prefix: s.Prefix, Revision: rev, Leases: []leaseView{}}
		for i := range entries {
			list.Leases = append(list.Leases, entries[i].view())
		}
		return out.Encode(env.Stdout, list)
	}
	return writeLeaseTable(env.Stdout, entries, out == cli.FormatWide, env.Clock())
}

func writeLeaseTable(w io.Writer, entries []Entry, wide bool, now time.Time) error {
	header := []string{"SUBNET", "NODE", "PUBLIC-IP", "VTEP-MAC", "EXPIRES", "RESERVED"}
	if wide {
		header = append(header, "VNI", "GOSSIP-ADDR", "ACQUIRED", "ETCD-LEASE")
	}
	t := cli.NewTable(w, header...)
	var bad []Entry
	for i := range entries {
		e := &entries[i]
		mac := ""
		if e.Lease != nil {
			mac = e.Lease.Attrs.VtepMAC.String()
		}
		cells := []string{e.subnetCell(), e.Holder(), ipCell(e.publicIP()), mac, e.Expires(now), e.reservedCell()}
		if wide {
			var vni, gossip, acquired, lease string
			if l := e.Lease; l != nil {
				vni = fmt.Sprint(l.Attrs.VNI)
				if l.Attrs.GossipAddr.IsValid() {
					gossip = l.Attrs.GossipAddr.String()
				}
				if !l.Attrs.AcquiredAt.IsZero() {
					acquired = l.Attrs.AcquiredAt.UTC().Format(time.RFC3339)
				}
			}
			if e.EtcdLease != 0 {
				lease = fmt.Sprintf("%x", e.EtcdLease)
			}
			cells = append(cells, vni, gossip, acquired, lease)
		}
		t.Row(cells...)
		if e.Err != nil {
			bad = append(bad, *e)
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "(no subnet keys)")
	}
	for _, e := range bad {
		fmt.Fprintf(w, "(!) %s: %v\n", e.Key, e.Err)
	}
	if len(bad) > 0 {
		fmt.Fprintln(w, "Malformed keys keep their subnets taken; `weftctl leases check` lists every problem.")
	}
	return nil
}

func runLeasesGet(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	sn, s, out, err := subnetListCommand(env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	found, err := keysFor(ctx, s, sn)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return fmt.Errorf("%w: no key for %s under %s: the subnet is free", cli.ErrNotFound, sn, s.M.SubnetsPrefix())
	}
	if len(found) > 1 {
		fmt.Fprintf(env.Stderr, "warning: %d keys name %s; `weftctl leases check` reports it\n", len(found), sn)
	}
	if out.Structured() {
		return out.Encode(env.Stdout, found[0].view())
	}
	for i := range found {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		if err := writeLeaseFields(env.Stdout, &found[i], env.Clock()); err != nil {
			return err
		}
	}
	return nil
}

func writeLeaseFields(w io.Writer, e *Entry, now time.Time) error {
	v := e.view()
	var acquired, vni string
	if v.AcquiredAt != nil {
		acquired = v.AcquiredAt.UTC().Format(time.RFC3339)
	}
	if v.VNI != 0 {
		vni = fmt.Sprint(v.VNI)
	}
	kv := []string{
		"Subnet", v.Subnet, "Key", v.Key, "Node", e.Holder(), "Public IP", v.PublicIP, "VTEP MAC", v.VtepMAC,
		"VNI", vni, "Gossip addr", v.GossipAddr, "Acquired at", acquired, "Reserved", e.reservedCell(),
		"Etcd lease", v.EtcdLease, "Expires", e.Expires(now), "Revision", fmt.Sprint(v.ModRevision),
	}
	if e.Err != nil {
		kv = append(kv, "Malformed", v.Malformed, "Value", v.Value)
	}
	return cli.Fields(w, kv...)
}

// listCommand registers the connection flags and -o on fs, parses the command line of a command
// without arguments and opens the etcd session.
func listCommand(env *cli.Env, fs *flag.FlagSet, args []string) (*cli.Session, cli.Format, error) {
	var ef cli.EtcdFlags
	ef.Register(fs)
	out := cli.OutputFlag(fs)
	s, err := cli.OpenCommand(env, fs, &ef, args)
	return s, *out, err
}

// subnetListCommand is listCommand for a command whose one argument is SUBNET.
func subnetListCommand(env *cli.Env, fs *flag.FlagSet, args []string) (netip.Prefix, *cli.Session, cli.Format, error) {
	var ef cli.EtcdFlags
	ef.Register(fs)
	out := cli.OutputFlag(fs)
	sn, s, err := subnetCommand(env, fs, &ef, args)
	return sn, s, *out, err
}

// subnetCommand parses the command line of a command whose one argument is SUBNET (its flags, ef's
// among them, registered on fs) and opens the etcd session.
func subnetCommand(env *cli.Env, fs *flag.FlagSet, ef *cli.EtcdFlags, args []string) (netip.Prefix, *cli.Session, error) {
	pos, err := cli.Parse(env, fs, args, "SUBNET")
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	sn, err := parseSubnetArg(pos[0])
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	s, err := ef.Open()
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	return sn, s, nil
}

// keysFor returns the keys under the subnets prefix that name subnet sn.
func keysFor(ctx context.Context, s *cli.Session, sn netip.Prefix) ([]Entry, error) {
	entries, _, err := ReadKeys(ctx, s)
	if err != nil {
		return nil, err
	}
	var found []Entry
	for _, e := range entries {
		if e.Subnet == sn {
			found = append(found, e)
		}
	}
	return found, nil
}
