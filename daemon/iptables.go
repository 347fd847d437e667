package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"

	"github.com/weft-net/weft/internal/nodeapi"
)

const (
	commentMasq    = "weft masq"
	commentForward = "weft forward"
	// kubeProxyMark is the mark kube-proxy sets on traffic it masquerades itself.
	kubeProxyMark = "0x4000/0x4000"
)

// IPTables is the part of *iptables.IPTables that the rules use.
type IPTables interface {
	ChainExists(table, chain string) (bool, error)
	ClearChain(table, chain string) error
	ClearAndDeleteChain(table, chain string) error
	List(table, chain string) ([]string, error)
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	DeleteIfExists(table, chain string, rulespec ...string) error
	HasRandomFully() bool
}

var _ IPTables = (*iptables.IPTables)(nil)

// Rules installs weft's forwarding and masquerade rules, like flannel's: traffic inside the pod
// network is never masqueraded, traffic from pods to anywhere else is, with --random-fully, and
// forwarding of the pod network is accepted.
type Rules struct {
	ipt     IPTables
	network netip.Prefix
	subnet  netip.Prefix
	masq    bool
	log     *slog.Logger
}

// NewRules returns the rules for a node with the given pod network and node subnet. With masq false,
// Ensure installs only the forward rules and removes weft's masquerade chain.
func NewRules(ipt IPTables, network, subnet netip.Prefix, masq bool, log *slog.Logger) *Rules {
	return &Rules{ipt: ipt, network: network, subnet: subnet, masq: masq, log: log.With("component", "iptables")}
}

type chainSpec struct {
	table, chain, parent, comment string
	rules                         [][]string
}

func (r *Rules) masqChain() chainSpec {
	n, s, c := r.network.String(), r.subnet.String(), []string{"-m", "comment", "--comment", commentMasq}
	masq := []string{"-j", "MASQUERADE"}
	if r.ipt.HasRandomFully() {
		masq = append(masq, "--random-fully")
	}
	rule := func(args ...string) []string {
		i := slices.Index(args, "-j")
		return slices.Concat(args[:i], c, args[i:])
	}
	return chainSpec{
		table: "nat", chain: nodeapi.ChainMasq, parent: "POSTROUTING", comment: commentMasq,
		rules: [][]string{
			rule("-m", "mark", "--mark", kubeProxyMark, "-j", "RETURN"),
			rule("-s", s, "-d", n, "-j", "RETURN"),
			rule("-s", n, "-d", s, "-j", "RETURN"),
			rule("!", "-s", n, "-d", s, "-j", "RETURN"),
			rule(slices.Concat([]string{"-s", n, "!", "-d", "224.0.0.0/4"}, masq)...),
			rule(slices.Concat([]string{"!", "-s", n, "-d", n}, masq)...),
		},
	}
}

func (r *Rules) forwardChain() chainSpec {
	n, c := r.network.String(), []string{"-m", "comment", "--comment", commentForward}
	return chainSpec{
		table: "filter", chain: nodeapi.ChainForward, parent: "FORWARD", comment: commentForward,
		rules: [][]string{
			slices.Concat([]string{"-s", n}, c, []string{"-j", "ACCEPT"}),
			slices.Concat([]string{"-d", n}, c, []string{"-j", "ACCEPT"}),
		},
	}
}

// Ensure makes the kernel hold exactly weft's rules. It is idempotent: an intact rule set is only
// read, and a damaged chain is rewritten.
func (r *Rules) Ensure() error {
	errs := []error{r.ensure(r.forwardChain())}
	if r.masq {
		errs = append(errs, r.ensure(r.masqChain()))
	} else {
		errs = append(errs, r.remove(r.masqChain()))
	}
	return errors.Join(errs...)
}

// Run re-checks the rules every interval, restoring what was changed, until ctx is done.
func (r *Rules) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Ensure(); err != nil {
				r.log.Error("restoring rules failed", "err", err)
			}
		}
	}
}

func (r *Rules) ensure(c chainSpec) error {
	exists, err := r.ipt.ChainExists(c.table, c.chain)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", c.table, c.chain, err)
	}
	var have []string
	if exists {
		if have, err = r.ipt.List(c.table, c.chain); err != nil {
			return fmt.Errorf("list %s/%s: %w", c.table, c.chain, err)
		}
	}
	if !sameRules(have, c) {
		if exists {
			r.log.Warn("rules changed outside weft, restoring", "table", c.table, "chain", c.chain)
		}
		if err := r.ipt.ClearChain(c.table, c.chain); err != nil {
			return fmt.Errorf("clear %s/%s: %w", c.table, c.chain, err)
		}
		for _, rule := range c.rules {
			if err := r.ipt.Append(c.table, c.chain, rule...); err != nil {
				return fmt.Errorf("append to %s/%s %q: %w", c.table, c.chain, strings.Join(rule, " "), err)
			}
		}
	}
	jump := []string{"-m", "comment", "--comment", c.comment, "-j", c.chain}
	ok, err := r.ipt.Exists(c.table, c.parent, jump...)
	if err != nil {
		return fmt.Errorf("check jump %s/%s: %w", c.table, c.parent, err)
	}
	if !ok {
		if err := r.ipt.Insert(c.table, c.parent, 1, jump...); err != nil {
			return fmt.Errorf("insert jump %s/%s: %w", c.table, c.parent, err)
		}
	}
	return nil
}

func (r *Rules) remove(c chainSpec) error {
	jump := []string{"-m", "comment", "--comment", c.comment, "-j", c.chain}
	if err := r.ipt.DeleteIfExists(c.table, c.parent, jump...); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete jump %s/%s: %w", c.table, c.parent, err)
	}
	exists, err := r.ipt.ChainExists(c.table, c.chain)
	if err != nil || !exists {
		return err
	}
	if err := r.ipt.ClearAndDeleteChain(c.table, c.chain); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s/%s: %w", c.table, c.chain, err)
	}
	return nil
}

// sameRules compares `iptables -S chain` output with the wanted rules, in order.
func sameRules(have []string, c chainSpec) bool {
	want := make([]string, 0, len(c.rules)+1)
	want = append(want, "-N "+c.chain)
	for _, r := range c.rules {
		want = append(want, "-A "+c.chain+" "+quoteRule(r))
	}
	return slices.Equal(have, want)
}

// quoteRule renders a rule as iptables -S prints it: arguments with spaces in double quotes.
func quoteRule(rule []string) string {
	out := make([]string, len(rule))
	for i, a := range rule {
		if strings.ContainsRune(a, ' ') {
			a = `"` + a + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func isNotExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}
