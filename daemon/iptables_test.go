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
		})
	}
}

// removeRules deletes weft's chains and the jumps to them, as an operator uninstalling weft would.
func removeRules(r *Rules) error {
	return errors.Join(r.remove(r.masqChain()), r.remove(r.forwardChain()))
}
