// Command weft-demo runs a multi-node weft fabric on this machine, in network namespaces with an
// embedded etcd (`make demo`, `weftctl demo`); the logic lives in package internal/demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/weft-net/weft/internal/demo"
)

func main() {
	err := demo.Main(context.Background(), &demo.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-demo:", err)
		if errors.Is(err, demo.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
