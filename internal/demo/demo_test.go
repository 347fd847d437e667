package demo

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/lab"
	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/internal/nsutil"
)

// TestInterruptWithClosedStdout runs weft-demo as `make demo | tee demo.log` would, closes its
// stdout once the fabric is up (tee died) and sends SIGINT to its whole process group (Ctrl-C):
// the demo must still tear everything down.
func TestInterruptWithClosedStdout(t *testing.T) {
	nstest.RequireRoot(t)
	bin := t.TempDir()
	if err := lab.Build("../..", bin); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(filepath.Join(bin, "weft-demo"), "-dir", dir, "-nodes", "2", "-pods", "1", "-bin-dir", bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if l, err := lab.Load(dir, nil); err == nil {
			_ = l.Down()
		}
	})
	sc := bufio.NewScanner(out)
	up := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Running.") {
			up = true
			break
		}
	}
	if !up {
		t.Fatalf("the demo ended before it was up: %v", <-exited)
	}
	st := record(t, dir)
	out.Close()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Logf("weft-demo exited: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("weft-demo did not exit after SIGINT")
	}
	for _, name := range st.Netns {
		if _, err := os.Stat(nsutil.Path(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left: %v", name, err)
		}
	}
	for key, pid := range st.Procs {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) left running", key, pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo's directory %s left: %v", dir, err)
	}
}

// record reads the lab's record from its state file.
func record(t *testing.T, dir string) lab.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st lab.State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Netns) < 5 || len(st.Procs) < 3 {
		t.Fatalf("implausible record: %d namespaces, %d processes", len(st.Netns), len(st.Procs))
	}
	return st
}
