package admin

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// problem is one finding of leases check.
type problem struct {
	// Kind is config, malformed, duplicate-subnet, overlap, outside-config, vni-mismatch,
	// duplicate-node, duplicate-mac or duplicate-ip.
	Kind   string `json:"kind"`
	Key    string `json:"key,omitempty"`
	Subnet string `json:"subnet,omitempty"`
	Detail string `json:"detail"`
}

// checkKeys finds the problems of a set of subnet keys under cfg (nil when the config is missing
// or invalid: cfgErr says why).
func checkKeys(cfg *subnet.Config, cfgErr error, entries []Entry) []problem {
	var c checker
	if cfgErr != nil {
		c.out = append(c.out, problem{Kind: "config", Detail: cfgErr.Error()})
	}
	named := c.checkEach(cfg, entries)
	c.checkOverlaps(named)
	c.checkDuplicates(named)
	slices.SortStableFunc(c.out, func(a, b problem) int {
		return cmp.Or(compareSubnetStrings(a.Subnet, b.Subnet),
			strings.Compare(a.Key, b.Key), strings.Compare(a.Kind, b.Kind))
	})
	return c.out
}

// checker collects the problems leases check finds.
type checker struct{ out []problem }

func (c *checker) add(kind string, e *Entry, format string, args ...any) {
	p := problem{Kind: kind, Key: e.Key, Detail: fmt.Sprintf(format, args...)}
	if e.Subnet.IsValid() {
		p.Subnet = e.Subnet.String()
	}
	c.out = append(c.out, p)
}

// checkEach finds the problems of each key alone, and returns the keys that name a subnet.
func (c *checker) checkEach(cfg *subnet.Config, entries []Entry) []*Entry {
	var named []*Entry
	for i := range entries {
		e := &entries[i]
		if e.Err != nil {
			c.add("malformed", e, "%v (flannel nodes drop their routes over such values; fix or reclaim the key)", e.Err)
		}
		if !e.Subnet.IsValid() {
			continue
		}
		named = append(named, e)
		if cfg == nil {
			continue
		}
		if !cfg.Covers(e.Subnet) {
			c.add("outside-config", e, "not a /%d subnet of Network %s: weftd never uses it", cfg.SubnetLen, cfg.Network)
		}
		if l := e.Lease; l != nil && l.Attrs.VNI != cfg.Backend.VNI {
			c.add("vni-mismatch", e, "the lease says VNI %d, the config %d: the node runs with an old config; restart its weftd (or flanneld)", l.Attrs.VNI, cfg.Backend.VNI)
		}
	}
	return named
}

// checkOverlaps finds the keys naming the same or overlapping subnets; it sorts named by subnet.
func (c *checker) checkOverlaps(named []*Entry) {
	// Keys sorted by address: a key overlapping an earlier one starts inside the earlier one that
	// reaches furthest.
	slices.SortStableFunc(named, func(a, b *Entry) int { return a.Subnet.Compare(b.Subnet) })
	reach := -1
	for i, e := range named {
		if reach >= 0 {
			r := named[reach]
			switch {
			case r.Subnet == e.Subnet:
				c.add("duplicate-subnet", e, "keys %s and %s both name it: two holders for one subnet", path.Base(r.Key), path.Base(e.Key))
			case r.Subnet.Overlaps(e.Subnet):
				c.add("overlap", e, "overlaps %s (key %s): both nodes route the shared addresses", r.Subnet, r.Key)
			}
		}
		if reach < 0 || subnet.LastAddr(e.Subnet).Compare(subnet.LastAddr(named[reach].Subnet)) > 0 {
			reach = i
		}
	}
}

// checkDuplicates finds nodes, VTEP MACs and public IPs that several keys share.
func (c *checker) checkDuplicates(named []*Entry) {
	byNode := map[string][]*Entry{}
	byMAC := map[string][]*Entry{}
	byIP := map[netip.Addr][]*Entry{}
	for _, e := range named {
		if n := e.nodeName(); n != "" {
			byNode[n] = append(byNode[n], e)
		}
		if e.Lease != nil {
			m := e.Lease.Attrs.VtepMAC.String()
			byMAC[m] = append(byMAC[m], e)
		}
		if ip := e.publicIP(); ip.IsValid() {
			byIP[ip] = append(byIP[ip], e)
		}
	}
	for _, n := range sortedKeys(byNode) {
		if g := byNode[n]; len(g) > 1 {
			c.dups("duplicate-node", fmt.Sprintf("node %q", n), "also holds", g,
				"weftd keeps one subnet per node (a reservation first) and deletes its other leases when it next acquires")
		}
	}
	for _, m := range sortedKeys(byMAC) {
		if g := byMAC[m]; len(distinct(g, (*Entry).publicIP)) > 1 {
			c.dups("duplicate-mac", "VTEP MAC "+m, "is also used by", g, "two nodes with one MAC: weftd programs neither")
		}
	}
	for _, ip := range slices.SortedFunc(maps.Keys(byIP), netip.Addr.Compare) {
		// One named node under several keys is a duplicate-node already.
		if g := byIP[ip]; len(g) > 1 && (len(distinct(g, (*Entry).nodeName)) > 1 || g[0].nodeName() == "") {
			c.dups("duplicate-ip", "public IP "+ip.String(), "is also used by", g,
				"two nodes on one address, or a node under two keys; flannel nodes tell themselves apart by this address")
		}
	}
}

// dups reports each key of group g, which share what.
func (c *checker) dups(kind, what, verb string, g []*Entry, why string) {
	for _, e := range g {
		var others []string
		for _, o := range g {
			if o != e {
				others = append(others, o.Subnet.String())
			}
		}
		c.add(kind, e, "%s %s %s: %s", what, verb, strings.Join(others, ", "), why)
	}
}

// compareSubnetStrings orders subnets by address; problems without a subnet come first.
func compareSubnetStrings(a, b string) int {
	pa, erra := netip.ParsePrefix(a)
	pb, errb := netip.ParsePrefix(b)
	if erra != nil || errb != nil {
		return strings.Compare(a, b)
	}
	return pa.Compare(pb)
}

func distinct[K comparable](g []*Entry, key func(*Entry) K) map[K]bool {
	out := map[K]bool{}
	for _, e := range g {
		out[key(e)] = true
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ReadConfig reads the network config; a missing or invalid one comes back as cfgErr, an etcd
// failure as err.
func ReadConfig(ctx context.Context, s *cli.Session) (cfg *subnet.Config, cfgErr, err error) {
	err = s.Do(ctx, func(ctx context.Context) error {
		var e error
		cfg, e = s.M.Config(ctx)
		if errors.Is(e, weftetcd.ErrNoConfig) || errors.Is(e, subnet.ErrInvalidConfig) {
			cfgErr, e = e, nil
		}
		return e
	})
	return cfg, cfgErr, err
}

func runLeasesCheck(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	s, out, err := listCommand(env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	cfg, cfgErr, err := ReadConfig(ctx, s)
	if err != nil {
		return err
	}
	entries, _, err := ReadKeys(ctx, s)
	if err != nil {
		return err
	}
	problems := checkKeys(cfg, cfgErr, entries)
	if out.Structured() {
		v := struct {
			Prefix   string    `json:"prefix"`
			Keys     int       `json:"keys"`
			Problems []problem `json:"problems"`
		}{s.Prefix, len(entries), append([]problem{}, problems...)}
		if err := out.Encode(env.Stdout, v); err != nil {
			return err
		}
	} else if len(problems) == 0 {
		fmt.Fprintf(env.Stdout, "%d subnet keys under %s: no problems.\n", len(entries), s.M.SubnetsPrefix())
	} else {
		t := cli.NewTable(env.Stdout, "PROBLEM", "SUBNET", "DETAIL")
		for _, p := range problems {
			sn := p.Subnet
			if sn == "" {
				sn = p.Key
			}
			t.Row(p.Kind, sn, p.Detail)
		}
		if err := t.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%d subnet keys under %s: %d problems.\n", len(entries), s.M.SubnetsPrefix(), len(problems))
	}
	if len(problems) > 0 {
		return fmt.Errorf("leases check: %d %w under %s", len(problems), cli.ErrProblems, s.Prefix)
	}
	return nil
}
