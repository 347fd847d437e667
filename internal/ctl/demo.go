package ctl

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// demoBinary is the program that runs the demo; it ships beside weftctl. weftctl itself links no
// lab and no etcd server.
const demoBinary = "weft-demo"

// runDemo replaces weftctl with weft-demo (found beside weftctl, else on PATH), so that signals
// and the terminal go straight to the demo.
func runDemo(_ context.Context, _ *Env, args []string) error {
	path, err := findDemo()
	if err != nil {
		return err
	}
	return syscall.Exec(path, append([]string{path}, args...), os.Environ())
}

func findDemo() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), demoBinary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(demoBinary)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside weftctl nor on PATH: run `make build` (make demo does): %w", demoBinary, err)
	}
	return p, nil
}
