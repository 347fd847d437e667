// Package ctl implements weftctl, the admin CLI: each subcommand is a function over parsed flags,
// so that the whole CLI is testable through Run.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrUsage marks a command line that weftctl cannot run; the main exits with code 2 on it.
var ErrUsage = errors.New("usage")

// Version is set at build time with -ldflags "-X github.com/weft-net/weft/internal/ctl.Version=...".
var Version = "dev"

// Env is what a command runs with.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "run a multi-node weft fabric on this machine (up, status, down)", runDemo},
		{"version", "print weftctl's version", func(_ context.Context, env *Env, _ []string) error {
			fmt.Fprintln(env.Stdout, "weftctl", Version)
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
			return c.run(ctx, env, args[1:])
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
	b.WriteString("\nEvery flag can also be set as a WEFT_* environment variable (-etcd-endpoints: WEFT_ETCD_ENDPOINTS).\n")
	fmt.Fprint(w, b.String())
}
