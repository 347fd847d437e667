package admin

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

func runLeasesReserve(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	var ef cli.EtcdFlags
	ef.Register(fs)
	node := fs.String("node", "", "node the subnet is reserved for (required)")
	ipArg := fs.String("public-ip", "", "the node's underlay IPv4 address (default: the one in the node's current lease of SUBNET)")
	pos, err := cli.Parse(env, fs, args, "SUBNET")
	if err != nil {
		return err
	}
	sn, err := parseSubnetArg(pos[0])
	if err != nil {
		return err
	}
	if *node == "" {
		return fmt.Errorf("%w: -node: the node to reserve %s for is required", cli.ErrUsage, sn)
	}
	var ip netip.Addr
	if *ipArg != "" {
		if ip, err = netip.ParseAddr(*ipArg); err != nil || !ip.Is4() {
			return fmt.Errorf("%w: -public-ip=%q: not an IPv4 address", cli.ErrUsage, *ipArg)
		}
	}
	s, err := ef.Open()
	if err != nil {
		return err
	}
	defer s.Close()
	entries, _, err := ReadKeys(ctx, s)
	if err != nil {
		return err
	}
	var own *Entry
	for i := range entries {
		if e := &entries[i]; e.Subnet == sn && e.Key == s.M.SubnetKey(sn) && e.Holder() == *node {
			own = e
		}
	}
	if !ip.IsValid() {
		if own == nil || !own.publicIP().IsValid() {
			return fmt.Errorf("%w: -public-ip: the address of node %q is required (it holds no lease of %s to take it from)", cli.ErrUsage, *node, sn)
		}
		ip = own.publicIP()
	}
	err = s.Do(ctx, func(ctx context.Context) error {
		return s.M.Reserve(ctx, sn, subnet.LeaseAttrs{NodeName: *node, PublicIP: ip})
	})
	switch {
	case errors.Is(err, weftetcd.ErrSubnetInUse):
		return fmt.Errorf("%w; reclaim it first (weftctl leases reclaim %s) if that node is gone", err, sn)
	case err != nil:
		return err
	case own != nil && own.reserved():
		fmt.Fprintf(env.Stdout, "%s is already reserved for node %q: nothing to do.\n", sn, *node)
	case own != nil:
		fmt.Fprintf(env.Stdout, "Turned node %q's lease of %s into a reservation: the key no longer expires.\n", *node, sn)
	default:
		fmt.Fprintf(env.Stdout, "Reserved %s for node %q (%s): the key never expires and no other node gets it.\n"+
			"weftd on %s takes it the next time it acquires its subnet (at start).\n", sn, *node, ip, *node)
	}
	return nil
}

// aliveWithin is how recently an etcd lease must have been renewed for its holder to look alive:
// weftd renews its lease through etcd's keep-alive, every third of the TTL (plus a tenth of slack).
func aliveWithin(granted time.Duration) time.Duration { return granted/3 + granted/10 }

func runLeasesReclaim(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	var ef cli.EtcdFlags
	ef.Register(fs)
	yes := fs.Bool("yes", false, "reclaim without asking")
	sn, s, err := subnetCommand(env, fs, &ef, args)
	if err != nil {
		return err
	}
	defer s.Close()
	found, err := keysFor(ctx, s, sn)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		fmt.Fprintf(env.Stdout, "%s is free: nothing to reclaim.\n", sn)
		return nil
	}
	for i := range found {
		if err := describeHolder(ctx, s, env, &found[i]); err != nil {
			return err
		}
	}
	if !*yes {
		ok, err := confirm(env, fmt.Sprintf("Reclaim %s? [y/N] ", sn))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s not reclaimed", cli.ErrAborted, sn)
		}
	}
	if err := s.Do(ctx, func(ctx context.Context) error { return s.M.Reclaim(ctx, sn) }); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Reclaimed %s: deleted its key and revoked the etcd lease no other key uses.\n", sn)
	return nil
}

// describeHolder prints who holds e and warns when the holder looks alive: a running weftd takes
// its subnet back as soon as it loses it.
func describeHolder(ctx context.Context, s *cli.Session, env *cli.Env, e *Entry) error {
	who := "an unknown holder"
	if h := e.Holder(); h != "" {
		who = fmt.Sprintf("node %q", h)
		if ip := e.publicIP(); ip.IsValid() {
			who += fmt.Sprintf(" (%s)", ip)
		}
	}
	if e.reserved() {
		fmt.Fprintf(env.Stdout, "%s is reserved for %s (key %s).\n", e.Subnet, who, e.Key)
		if e.Holder() != "" {
			fmt.Fprintf(env.Stderr, "warning: if weftd runs on that node, it acquires a subnet again at once, this one if it is still free.\n")
		}
		return nil
	}
	var left, granted time.Duration
	if err := s.Do(ctx, func(ctx context.Context) error {
		var err error
		left, granted, err = s.M.LeaseTTL(ctx, e.EtcdLease)
		return err
	}); err != nil {
		return fmt.Errorf("%s: %w", e.Key, err)
	}
	fmt.Fprintf(env.Stdout, "%s is leased to %s (key %s, etcd lease %x, %s).\n", e.Subnet, who, e.Key, e.EtcdLease, e.Expires(env.Clock()))
	if left > 0 && granted-left < aliveWithin(granted) {
		fmt.Fprintf(env.Stderr, "warning: the etcd lease was renewed %s ago: weftd on that node looks alive, and a live weftd takes its\n"+
			"subnet back as soon as it loses it. Stop weftd on the node first if it should not keep %s.\n", (granted - left).String(), e.Subnet)
	}
	return nil
}

// confirm asks question on stdout and reads a yes or no from stdin.
func confirm(env *cli.Env, question string) (bool, error) {
	fmt.Fprint(env.Stdout, question)
	if env.Stdin == nil {
		fmt.Fprintln(env.Stdout)
		return false, fmt.Errorf("%w: no answer (no input): pass -yes to confirm", cli.ErrAborted)
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(env.Stdout)
		return false, fmt.Errorf("%w: no answer (input closed): pass -yes to confirm", cli.ErrAborted)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
