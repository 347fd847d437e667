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

// ErrRulesChanged marks a chain that changed under weft while it was rewriting it.
var ErrRulesChanged = errors.New("iptables rules changed during the update")

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
	ListById(table, chain string, id int) (string, error)
	DeleteById(table, chain string, id int) error
	HasRandomFully() bool
}

var _ IPTables = (*iptables.IPTables)(nil)

// ForwardPlacement is where weft's jump to its forward chain stays in the filter FORWARD chain
// (weftd's -forward-placement; ADR 0006 says what each one bypasses or is bypassed by).
type ForwardPlacement string

const (
	// ForwardFirst inserts the jump as the first rule of FORWARD, and keeps it ahead of every rule
	// that drops or rejects (the host firewall's).
	ForwardFirst ForwardPlacement = "first"
	// ForwardAppend appends the jump to FORWARD, after the host firewall's rules.
	ForwardAppend ForwardPlacement = "append"
	// DefaultForwardPlacement is ForwardFirst: pods keep working behind a host firewall whose
	// FORWARD ends in a REJECT or DROP rule.
	DefaultForwardPlacement = ForwardFirst
)

// Check returns an error unless p is one of the placements.
func (p ForwardPlacement) Check() error {
	if p != ForwardFirst && p != ForwardAppend {
		return fmt.Errorf("want %s or %s", ForwardFirst, ForwardAppend)
	}
	return nil
}

// Rules installs weft's forwarding and masquerade rules, like flannel's: traffic inside the pod
// network is never masqueraded, traffic from pods to anywhere else is, with --random-fully, and
// forwarding of the pod network is accepted.
type Rules struct {
	ipt       IPTables
	network   netip.Prefix
	subnet    netip.Prefix
	masq      bool
	placement ForwardPlacement
	log       *slog.Logger
}

// NewRules returns the rules for a node with the given pod network and node subnet, with the
// forward jump at DefaultForwardPlacement. With masq false, Ensure installs only the forward rules
// and removes weft's masquerade chain.
func NewRules(ipt IPTables, network, subnet netip.Prefix, masq bool, log *slog.Logger) *Rules {
	return &Rules{ipt: ipt, network: network, subnet: subnet, masq: masq, placement: DefaultForwardPlacement, log: log.With("component", "iptables")}
}

// WithForwardPlacement returns a copy of r that keeps the forward jump at p, which must pass
// ForwardPlacement.Check.
func (r *Rules) WithForwardPlacement(p ForwardPlacement) *Rules {
	c := *r
	c.placement = p
	return &c
}

type chainSpec struct {
	table, chain, parent, comment string
	rules                         [][]string
	// placement, when set, is where the jump must stay in parent, and a misplaced jump is moved.
	// Without it the jump is inserted first when missing and left where it is.
	placement ForwardPlacement
}

// jump is the rule in parent that jumps to the chain.
func (c chainSpec) jump() []string {
	return []string{"-m", "comment", "--comment", c.comment, "-j", c.chain}
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
		placement: r.placement,
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
	if err := r.ensureChain(c); err != nil {
		return err
	}
	if c.placement != "" {
		return r.placeJump(c)
	}
	ok, err := r.ipt.Exists(c.table, c.parent, c.jump()...)
	if err != nil {
		return fmt.Errorf("check jump %s/%s: %w", c.table, c.parent, err)
	}
	if !ok {
		if err := r.ipt.Insert(c.table, c.parent, 1, c.jump()...); err != nil {
			return fmt.Errorf("insert jump %s/%s: %w", c.table, c.parent, err)
		}
	}
	return nil
}

// ensureChain makes c's chain hold exactly c's rules, rewriting it when it differs.
func (r *Rules) ensureChain(c chainSpec) error {
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
	if sameRules(have, c) {
		return nil
	}
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
	return nil
}

// placeJump keeps exactly one jump to c's chain in c.parent, placed as c.placement says, without
// fighting other programs over the top of the chain:
//
//   - first: the jump must come before every rule that drops or rejects (a host firewall's); other
//     programs' rules ahead of it that do neither are left there. A missing or misplaced jump is
//     inserted as rule 1.
//   - append: the jump must come after every rule that drops or rejects; a missing or misplaced
//     jump is appended. Other rules may follow it.
//
// A misplaced or duplicated jump is moved by adding the new one before deleting the others, so that
// the parent is never without it.
func (r *Rules) placeJump(c chainSpec) error {
	at, firstStop, lastStop, err := r.jumpsIn(c)
	if err != nil {
		return err
	}
	first := c.placement == ForwardFirst
	placed := func(id int) bool {
		if first {
			return firstStop == 0 || id < firstStop
		}
		return id > lastStop
	}
	keep := slices.IndexFunc(at, placed)
	if keep == 0 && len(at) == 1 {
		return nil
	}
	if len(at) > 0 {
		r.log.Warn("moving jump", "table", c.table, "chain", c.parent, "to", c.chain, "placement", c.placement, "rules", at)
	}
	if keep >= 0 {
		at = slices.Delete(at, keep, keep+1)
	} else {
		if first {
			err = r.ipt.Insert(c.table, c.parent, 1, c.jump()...)
			for i := range at {
				at[i]++ // the insert moved them down
			}
		} else {
			err = r.ipt.Append(c.table, c.parent, c.jump()...)
		}
		if err != nil {
			return fmt.Errorf("add jump %s/%s (%s): %w", c.table, c.parent, c.placement, err)
		}
	}
	// From the last, so that each deletion leaves the numbers before it as they were.
	for _, id := range slices.Backward(at) {
		if err := r.deleteJumpAt(c, id); err != nil {
			return err
		}
	}
	return nil
}

// jumpsIn returns the rule numbers (from 1) of the jumps to c's chain in c.parent, and those of
// its first and last rules that drop or reject (0 when none does).
func (r *Rules) jumpsIn(c chainSpec) (at []int, firstStop, lastStop int, err error) {
	have, err := r.ipt.List(c.table, c.parent)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("list %s/%s: %w", c.table, c.parent, err)
	}
	jump := jumpRule(c)
	n := 0
	for _, rule := range have {
		if !strings.HasPrefix(rule, "-A ") {
			continue // the policy
		}
		n++
		switch {
		case rule == jump:
			at = append(at, n)
		case strings.Contains(rule+" ", " -j DROP ") || strings.Contains(rule+" ", " -j REJECT "):
			if firstStop == 0 {
				firstStop = n
			}
			lastStop = n
		}
	}
	return at, firstStop, lastStop, nil
}

// deleteJumpAt deletes rule number id of c.parent after checking that it still is the jump to
// c's chain, so that a rule someone else added meanwhile is never deleted in its place.
func (r *Rules) deleteJumpAt(c chainSpec, id int) error {
	rule, err := r.ipt.ListById(c.table, c.parent, id)
	if err != nil {
		return fmt.Errorf("read rule %d of %s/%s: %w", id, c.table, c.parent, err)
	}
	if rule != jumpRule(c) {
		return fmt.Errorf("%w: %s/%s rule %d is %q, not weft's jump; left for the next check", ErrRulesChanged, c.table, c.parent, id, rule)
	}
	if err := r.ipt.DeleteById(c.table, c.parent, id); err != nil {
		return fmt.Errorf("delete rule %d of %s/%s: %w", id, c.table, c.parent, err)
	}
	return nil
}

// jumpRule renders c's jump as `iptables -S parent` prints it.
func jumpRule(c chainSpec) string { return "-A " + c.parent + " " + quoteRule(c.jump()) }

func (r *Rules) remove(c chainSpec) error {
	if err := r.ipt.DeleteIfExists(c.table, c.parent, c.jump()...); err != nil && !isNotExist(err) {
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
