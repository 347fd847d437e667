// Package ctl is weftctl: its command table, dispatch and usage. The commands live in the
// subpackages: admin (leases, config, etcd-role), doctor and peers; cli holds what they share.
package ctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/weft-net/weft/internal/ctl/admin"
	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/doctor"
	"github.com/weft-net/weft/internal/ctl/peers"
	"github.com/weft-net/weft/internal/version"
)

// Env is what a command runs with (cli.Env).
type Env = cli.Env

// ErrUsage marks a command line that weftctl cannot run: the main exits with code 2 on it.
var ErrUsage = cli.ErrUsage

func commands() []cli.Command {
	return []cli.Command{
		{Name: "leases", Summary: "list, inspect, reserve, reclaim, check and import subnet leases", Run: admin.Leases},
		{Name: "config", Summary: "get, set or validate the network config", Run: admin.Config},
		{Name: "peers", Summary: "a node's peers: etcd view, gossip view and data-plane probe", Run: peers.Run},
		{Name: "doctor", Summary: "check this node: device, peer entries, rules, subnet.env, etcd, gossip", Run: doctor.Run},
		{Name: "etcd-role", Summary: "print the etcdctl commands for a least-privilege etcd role for weftd", Run: admin.EtcdRole},
		{Name: "demo", Summary: "run a multi-node weft fabric on this machine (up, status, down)", Run: runDemo},
		{Name: "version", Summary: "print weftctl's version", Run: func(_ context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: version takes no arguments", ErrUsage)
			}
			fmt.Fprintln(env.Stdout, "weftctl", version.Version)
			return nil
		}},
	}
}

// Run runs weftctl with args (without the program name).
func Run(ctx context.Context, env *Env, args []string) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return fmt.Errorf("%w: no command given", ErrUsage)
		}
		return nil
	}
	return cli.Dispatch(ctx, env, commands(), args)
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("weftctl — weft's admin CLI\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.Name, c.Summary)
	}
	b.WriteString("\n`weftctl COMMAND -h` shows a command's flags. Every flag can also be set as a WEFT_* environment\n" +
		"variable (-etcd-endpoints: WEFT_ETCD_ENDPOINTS), except -yes, -apply and -force.\n")
	fmt.Fprint(w, b.String())
}
