package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/coreos/go-iptables/iptables"

	"github.com/weft-net/weft/internal/nodeapi"
	"github.com/weft-net/weft/internal/nstest"
)

var (
	testNetwork = netip.MustParsePrefix("10.244.0.0/16")
	testSubnet  = netip.MustParsePrefix("10.244.31.0/24")
	discard     = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// renderRules renders weft's chains and the jumps to them as `iptables -S` prints them.
func renderRules(t *testing.T, ipt *iptables.IPTables) string {
	t.Helper()
	var b strings.Builder
	for _, tc := range [][2]string{{"filter", "FORWARD"}, {"filter", nodeapi.ChainForward}, {"nat", "POSTROUTING"}, {"nat", nodeapi.ChainMasq}} {
		ok, err := ipt.ChainExists(tc[0], tc[1])
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		rules, err := ipt.List(tc[0], tc[1])
		if err != nil {
			t.Fatal(err)
		}
		header := "*" + tc[0] + "\n"
		for _, r := range rules {
			if strings.HasPrefix(r, "-A") {
				b.WriteString(header + r + "\n")
				header = ""
			}
		}
	}
	return b.String()
}

// wantRules is the rule set flannel installs (iptables -S on a flannel v0.28.9 node with --ip-masq), with weft's chain
// names and comments.
const wantRules = `*filter
-A FORWARD -m comment --comment "weft forward" -j WEFT-FWD
*filter
-A WEFT-FWD -s 10.244.0.0/16 -m comment --comment "weft forward" -j ACCEPT
-A WEFT-FWD -d 10.244.0.0/16 -m comment --comment "weft forward" -j ACCEPT
*nat
-A POSTROUTING -m comment --comment "weft masq" -j WEFT-POSTRTG
*nat
-A WEFT-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "weft masq" -j RETURN
-A WEFT-POSTRTG -s 10.244.31.0/24 -d 10.244.0.0/16 -m comment --comment "weft masq" -j RETURN
-A WEFT-POSTRTG -s 10.244.0.0/16 -d 10.244.31.0/24 -m comment --comment "weft masq" -j RETURN
-A WEFT-POSTRTG ! -s 10.244.0.0/16 -d 10.244.31.0/24 -m comment --comment "weft masq" -j RETURN
-A WEFT-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "weft masq" -j MASQUERADE --random-fully
-A WEFT-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "weft masq" -j MASQUERADE --random-fully
`

const wantForwardOnly = `*filter
-A FORWARD -m comment --comment "weft forward" -j WEFT-FWD
*filter
-A WEFT-FWD -s 10.244.0.0/16 -m comment --comment "weft forward" -j ACCEPT
-A WEFT-FWD -d 10.244.0.0/16 -m comment --comment "weft forward" -j ACCEPT
`

func TestRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ipt *iptables.IPTables) error {
		r := NewRules(ipt, testNetwork, testSubnet, true, discard)
		steps := []struct {
			name   string
			mutate func() error
			rules  *Rules
			want   string
		}{
			{"first ensure", nil, r, wantRules},
			{"idempotent", nil, r, wantRules},
			{"rule deleted", func() error {
				return ipt.Delete("nat", nodeapi.ChainMasq, "-s", "10.244.0.0/16", "-d", "10.244.31.0/24", "-m", "comment", "--comment", "weft masq", "-j", "RETURN")
			}, r, wantRules},
			{"foreign rule added to our chain", func() error {
				return ipt.Insert("nat", nodeapi.ChainMasq, 1, "-j", "ACCEPT")
			}, r, wantRules},
			{"jump deleted", func() error {
				return ipt.Delete("filter", "FORWARD", "-m", "comment", "--comment", "weft forward", "-j", nodeapi.ChainForward)
			}, r, wantRules},
			{"chain flushed", func() error { return ipt.ClearChain("filter", nodeapi.ChainForward) }, r, wantRules},
			{"masq off", nil, NewRules(ipt, testNetwork, testSubnet, false, discard), wantForwardOnly},
			{"masq on again", nil, r, wantRules},
		}
		for _, s := range steps {
			if s.mutate != nil {
				if err := s.mutate(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
			}
			if err := s.rules.Ensure(); err != nil {
				t.Fatalf("%s: Ensure: %v", s.name, err)
			}
			if got := renderRules(t, ipt); got != s.want {
				t.Errorf("%s: rules\n%s\nwant\n%s", s.name, got, s.want)
			}
		}
		if err := removeRules(r); err != nil {
			t.Fatal(err)
		}
		if got := renderRules(t, ipt); got != "" {
			t.Errorf("after Remove:\n%s", got)
		}
		return removeRules(r)
	})
}

// removeRules deletes weft's chains and the jumps to them, as an operator uninstalling weft would.
func removeRules(r *Rules) error {
	return errors.Join(r.remove(r.masqChain()), r.remove(r.forwardChain()))
}

// forwardRules returns the rules of the filter FORWARD chain as `iptables -S FORWARD` prints them.
func forwardRules(t *testing.T, ipt IPTables) string {
	t.Helper()
	rules, err := ipt.List("filter", "FORWARD")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rules {
		if strings.HasPrefix(r, "-A") {
			b.WriteString(r + "\n")
		}
	}
	return b.String()
}

const (
	weftJump   = `-A FORWARD -m comment --comment "weft forward" -j WEFT-FWD` + "\n"
	hostAccept = "-A FORWARD -i lo -j ACCEPT\n"
	hostReject = "-A FORWARD -j REJECT --reject-with icmp-port-unreachable\n"
)

// TestForwardPlacement starts from a host firewall whose FORWARD ends in a REJECT, and checks where
// each placement keeps weft's jump, that rerunning changes nothing, that switching placement or a
// reject ahead of the jump moves it, without duplicates, and that other programs' rules that do not
// stop traffic are left where they are.
func TestForwardPlacement(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ipt *iptables.IPTables) error {
		for _, rule := range [][]string{{"-i", "lo", "-j", "ACCEPT"}, {"-j", "REJECT"}} {
			if err := ipt.Append("filter", "FORWARD", rule...); err != nil {
				return err
			}
		}
		checkPlacementSteps(t, ipt)
		return nil
	})
}

// forEachBackend runs fn in a throwaway namespace with each iptables backend installed.
func forEachBackend(t *testing.T, fn func(*testing.T, *iptables.IPTables) error) {
	for _, backend := range []string{"iptables-nft", "iptables-legacy"} {
		t.Run(backend, func(t *testing.T) {
			n := nstest.New(t)
			path, err := exec.LookPath(backend)
			if err != nil {
				t.Skipf("%s not installed: %v", backend, err)
			}
			nstest.Do(t, n, func() error {
				ipt, err := iptables.New(iptables.Path(path))
				if err != nil {
					return err
				}
				return fn(t, ipt)
			})
		})
	}
}

func checkPlacementSteps(t *testing.T, ipt *iptables.IPTables) {
	base := NewRules(ipt, testNetwork, testSubnet, false, discard)
	first, appended := base.WithForwardPlacement(ForwardFirst), base.WithForwardPlacement(ForwardAppend)
	jumpArgs := []string{"-m", "comment", "--comment", commentForward, "-j", nodeapi.ChainForward}
	steps := []struct {
		name   string
		mutate func() error
		rules  *Rules
		want   string
	}{
		{"first, ahead of the final REJECT", nil, first, weftJump + hostAccept + hostReject},
		{"first again", nil, first, weftJump + hostAccept + hostReject},
		{"NewRules defaults to first", nil, base, weftJump + hostAccept + hostReject},
		{"switched to append", nil, appended, hostAccept + hostReject + weftJump},
		{"append again", nil, appended, hostAccept + hostReject + weftJump},
		{"append leaves an accept appended behind the jump", func() error {
			return ipt.Append("filter", "FORWARD", "-i", "lo", "-j", "ACCEPT")
		}, appended, hostAccept + hostReject + weftJump + hostAccept},
		{"append moves the jump behind a drop appended behind it", func() error {
			if err := ipt.DeleteById("filter", "FORWARD", 4); err != nil { // the accept just appended
				return err
			}
			return ipt.Append("filter", "FORWARD", "-j", "DROP")
		}, appended, hostAccept + hostReject + "-A FORWARD -j DROP\n" + weftJump},
		{"switched back to first", func() error {
			return ipt.Delete("filter", "FORWARD", "-j", "DROP")
		}, first, weftJump + hostAccept + hostReject},
		{"first leaves another program's accept ahead of the jump (no fight over rule 1)", func() error {
			return ipt.Insert("filter", "FORWARD", 1, "-i", "lo", "-j", "ACCEPT")
		}, first, hostAccept + weftJump + hostAccept + hostReject},
		{"first moves the jump ahead of a reject inserted ahead of it", func() error {
			if err := ipt.Delete("filter", "FORWARD", "-i", "lo", "-j", "ACCEPT"); err != nil {
				return err
			}
			return ipt.Insert("filter", "FORWARD", 1, "-j", "REJECT")
		}, first, weftJump + hostReject + hostAccept + hostReject},
		{"first, with a duplicate jump", func() error {
			if err := ipt.Delete("filter", "FORWARD", "-j", "REJECT"); err != nil {
				return err
			}
			return ipt.Insert("filter", "FORWARD", 3, jumpArgs...)
		}, first, weftJump + hostAccept + hostReject},
		{"append, with duplicate jumps", func() error {
			return ipt.Insert("filter", "FORWARD", 2, jumpArgs...)
		}, appended, hostAccept + hostReject + weftJump},
	}
	for _, s := range steps {
		if s.mutate != nil {
			if err := s.mutate(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if err := s.rules.Ensure(); err != nil {
			t.Fatalf("%s: Ensure: %v", s.name, err)
		}
		if got := forwardRules(t, ipt); got != s.want {
			t.Errorf("%s: FORWARD\n%s\nwant\n%s", s.name, got, s.want)
		}
	}
}

// racingIPTables inserts a foreign rule at the top of FORWARD just before the first rule is read
// by number, as another program changing FORWARD while weft moves its jump would.
type racingIPTables struct {
	*iptables.IPTables
	raced bool
}

func (r *racingIPTables) ListById(table, chain string, id int) (string, error) {
	if !r.raced {
		r.raced = true
		if err := r.Insert("filter", "FORWARD", 1, "-i", "lo", "-j", "ACCEPT"); err != nil {
			return "", err
		}
	}
	return r.IPTables.ListById(table, chain, id)
}

// TestForwardPlacementRace checks that moving the jump never deletes a rule that another program
// added meanwhile in the jump's place, and that the next check converges.
func TestForwardPlacementRace(t *testing.T) {
	n := nstest.New(t)
	nstest.Do(t, n, func() error {
		plain, err := iptables.New()
		if err != nil {
			return err
		}
		if err := plain.Append("filter", "FORWARD", "-j", "REJECT"); err != nil {
			return err
		}
		ipt := &racingIPTables{IPTables: plain}
		if err := NewRules(ipt, testNetwork, testSubnet, false, discard).WithForwardPlacement(ForwardAppend).Ensure(); err != nil {
			return err
		}
		first := NewRules(ipt, testNetwork, testSubnet, false, discard).WithForwardPlacement(ForwardFirst)
		if err := first.Ensure(); !errors.Is(err, ErrRulesChanged) {
			t.Errorf("Ensure with FORWARD changed under it: err = %v, want ErrRulesChanged", err)
		}
		// The foreign rule went in at the top after weft's new jump, so the number of the old one
		// named the host's REJECT when it was checked: nothing was deleted.
		if got, want := forwardRules(t, ipt), hostAccept+weftJump+hostReject+weftJump; got != want {
			t.Errorf("after the race: FORWARD\n%s\nwant\n%s", got, want)
		}
		if err := first.Ensure(); err != nil {
			t.Errorf("Ensure after the race: %v", err)
		}
		// The jump behind the foreign accept is ahead of the REJECT: it stays, the duplicate goes.
		if got, want := forwardRules(t, ipt), hostAccept+weftJump+hostReject; got != want {
			t.Errorf("the check after the race: FORWARD\n%s\nwant\n%s", got, want)
		}
		return nil
	})
}
