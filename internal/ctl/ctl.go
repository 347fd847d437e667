// Package ctl implements weftctl, the admin CLI: each subcommand is a function over parsed flags,
// so that the whole CLI is testable through Run.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weft-net/weft/internal/version"
)

// Sentinel errors. The main exits with code 2 on ErrUsage and 1 on any other error.
var (
	// ErrUsage marks a command line that weftctl cannot run.
	ErrUsage = errors.New("usage")
	// ErrProblems marks a check (leases check, doctor) that found problems; they are printed.
	ErrProblems = errors.New("problems found")
	// ErrNotFound marks a subnet that has no key in etcd.
	ErrNotFound = errors.New("not found")
	// ErrAborted marks an operation the user did not confirm.
	ErrAborted = errors.New("aborted")
	// ErrRefused marks a write weftctl refuses because of what it would break (see --force).
	ErrRefused = errors.New("refused")
)

// Env is what a command runs with. Only the writers are required.
type Env struct {
	Stdout, Stderr io.Writer
	// Stdin answers confirmations; nil answers none.
	Stdin io.Reader
	// Getenv reads the WEFT_* variables; nil means os.Getenv.
	Getenv func(string) string
	// Now is the clock relative times are shown against; nil means time.Now.
	Now func() time.Time
	// Netlink is the handle doctor reads the kernel through; nil opens one in the current network
	// namespace.
	Netlink *netlink.Handle
	// IPTables is what doctor reads weft's chains with; nil runs the iptables binary.
	IPTables IPTables
}

func (env *Env) now() time.Time {
	if env.Now == nil {
		return time.Now()
	}
	return env.Now()
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"leases", "list, inspect, reserve, reclaim, check and import subnet leases", runLeases},
		{"config", "get, set or validate the network config", runConfig},
		{"peers", "a node's peers: etcd view, gossip view and data-plane probe", runPeers},
		{"doctor", "check this node: device, peer entries, rules, subnet.env, etcd, gossip", runDoctor},
		{"etcd-role", "print the etcdctl commands for a least-privilege etcd role for weftd", runEtcdRole},
		{"demo", "run a multi-node weft fabric on this machine (up, status, down)", runDemo},
		{"version", "print weftctl's version", func(_ context.Context, env *Env, args []string) error {
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
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("%w: unknown command %q (see weftctl help)", ErrUsage, args[0])
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("weftctl — weft's admin CLI\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\n`weftctl COMMAND -h` shows a command's flags. Every flag can also be set as a WEFT_* environment\n" +
		"variable (-etcd-endpoints: WEFT_ETCD_ENDPOINTS), except -yes, -apply and -force.\n")
	fmt.Fprint(w, b.String())
}

// subcommand is one verb of a command group (leases, config).
type subcommand struct {
	name, synopsis, summary string
	// run parses args into fs, which carries the verb's name and synopsis for its usage.
	run func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
}

// runGroup dispatches "weftctl group VERB ..." to the verb's function.
func runGroup(ctx context.Context, env *Env, group string, subs []subcommand, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		var b strings.Builder
		fmt.Fprintf(&b, "usage: weftctl %s VERB [flags]\n\nVerbs:\n", group)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", s.name, s.synopsis, s.summary)
		}
		tw.Flush()
		fmt.Fprintf(&b, "\n`weftctl %s VERB -h` shows a verb's flags.\n", group)
		if len(args) == 0 {
			fmt.Fprint(env.Stderr, b.String())
			return fmt.Errorf("%w: weftctl %s needs a verb", ErrUsage, group)
		}
		fmt.Fprint(env.Stdout, b.String())
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, env, newFlags(env, group+" "+s.name, s.synopsis), args[1:])
		}
	}
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return fmt.Errorf("%w: unknown verb %q for weftctl %s (want %s)", ErrUsage, args[0], group, strings.Join(names, ", "))
}
