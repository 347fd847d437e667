// Package cli holds what every weftctl command shares: the environment it runs in, the errors the
// main maps to exit codes, flag parsing (with WEFT_* variables), the output formats and tables,
// the dispatch of verb groups, and the etcd connection flags and session.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
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

// IPTables is what doctor reads weft's chains with; *iptables.IPTables implements it.
type IPTables interface {
	ChainExists(table, chain string) (bool, error)
	List(table, chain string) ([]string, error)
}

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

// Clock is the time relative times are shown against: Now's, else the current time.
func (env *Env) Clock() time.Time {
	if env.Now == nil {
		return time.Now()
	}
	return env.Now()
}

// Command is one weftctl command: "weftctl NAME ARGS...".
type Command struct {
	Name, Summary string
	Run           func(ctx context.Context, env *Env, args []string) error
}

// Dispatch runs the command of cmds that args[0] names with the other arguments; -h is no error.
func Dispatch(ctx context.Context, env *Env, cmds []Command, args []string) error {
	for _, c := range cmds {
		if c.Name == args[0] {
			err := c.Run(ctx, env, args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("%w: unknown command %q (see weftctl help)", ErrUsage, args[0])
}

// Subcommand is one verb of a command group (leases, config).
type Subcommand struct {
	Name, Synopsis, Summary string
	// Run parses args into fs, which carries the verb's name and synopsis for its usage.
	Run func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
}

// RunGroup dispatches "weftctl group VERB ..." to the verb's function.
func RunGroup(ctx context.Context, env *Env, group string, subs []Subcommand, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		var b strings.Builder
		fmt.Fprintf(&b, "usage: weftctl %s VERB [flags]\n\nVerbs:\n", group)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", s.Name, s.Synopsis, s.Summary)
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
		if s.Name == args[0] {
			return s.Run(ctx, env, NewFlags(env, group+" "+s.Name, s.Synopsis), args[1:])
		}
	}
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name
	}
	return fmt.Errorf("%w: unknown verb %q for weftctl %s (want %s)", ErrUsage, args[0], group, strings.Join(names, ", "))
}
