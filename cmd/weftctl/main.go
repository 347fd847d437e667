// Command weftctl is weft's admin CLI: leases, network config, diagnostics and the local demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weft-net/weft/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := ctl.Run(ctx, &ctl.Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "weftctl:", err)
		if errors.Is(err, ctl.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
