package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/nstest"
	"github.com/weft-net/weft/internal/nsutil"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds weft's binaries once for the package's tests.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "weft-lab-test-bin"); binErr == nil {
			binErr = Build("../..", binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestLab brings up a two-node lab with a pod per node in a directory that exists already, checks
// what it records and reports, and takes it down: nothing the lab created is left, and what it did
// not create stays.
func TestLab(t *testing.T) {
	nstest.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	mine := filepath.Join(dir, "not-the-lab's")
	if err := os.WriteFile(mine, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Up(ctx, Options{Dir: dir, Prefix: fmt.Sprintf("wlt%d-", os.Getpid()%100000), BinDir: binaries(t), Conflist: "../../etc/10-weft.conflist"})
	if err != nil {
		t.Fatal(err)
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			_ = l.Down()
		}
	})
	var nodes []*Node
	for range 2 {
		n, err := l.AddNode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	var pods []*Pod
	for _, n := range nodes {
		if err := l.WaitReady(ctx, n, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		p, err := l.AddPod(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	checkLabUp(t, l, nodes, pods)
	if err := l.DelPod(ctx, pods[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nsutil.Path(pods[1].Netns)); !errors.Is(err, os.ErrNotExist) || len(l.State().Pods) != 1 {
		t.Errorf("after DelPod: namespace %s (%v), %d pods recorded", pods[1].Netns, err, len(l.State().Pods))
	}
	st := l.State()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	downed = true
	checkLabGone(t, st, dir, mine)
}

func checkLabUp(t *testing.T, l *Lab, nodes []*Node, pods []*Pod) {
	t.Helper()
	st := l.State()
	if st.Kind != stateKind || st.OwnDir || !slices.Contains(st.Files, "etcd") || !slices.Contains(st.Files, "node2") {
		t.Errorf("record: kind %q, own dir %t, files %v", st.Kind, st.OwnDir, st.Files)
	}
	if want := 1 + len(nodes) + len(pods); len(st.Netns) != want {
		t.Errorf("recorded namespaces %v, want %d", st.Netns, want)
	}
	for key, pid := range st.Procs {
		if !ours(pid, st.Dir) {
			t.Errorf("recorded process %s (pid %d) is not running as the lab's", key, pid)
		}
	}
	if err := l.CheckPeerNode(nodes[0], nodes[1]); err != nil {
		t.Error(err)
	}
	if err := l.CheckPeerNode(nodes[1], nodes[0]); err != nil {
		t.Error(err)
	}
	e, err := l.Env(nodes[0])
	if err != nil || !e.Ready || !e.Subnet.Contains(pods[0].IP) {
		t.Errorf("node1's subnet.env %+v (%v) does not hold its pod %s", e, err, pods[0].IP)
	}
	n, err := l.NS(pods[0].Netns)
	if err != nil {
		t.Fatal(err)
	}
	if err := Ping(n, pods[1].IP, 1, 5*time.Second); err != nil {
		t.Errorf("pod to pod across nodes: %v", err)
	}
	// The lab checks the peer's entries in full: a wrong VTEP MAC is reported.
	want, err := l.PeerOf(nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	want.VtepMAC = append(want.VtepMAC[:5:5], want.VtepMAC[5]^1)
	if err := l.CheckPeer(nodes[0], want); err == nil {
		t.Error("CheckPeer accepted entries carrying another VTEP MAC")
	}
}

func checkLabGone(t *testing.T, st State, dir, mine string) {
	t.Helper()
	for _, name := range st.Netns {
		if _, err := os.Stat(nsutil.Path(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left: %v", name, err)
		}
	}
	for key, pid := range st.Procs {
		if ours(pid, st.Dir) {
			t.Errorf("process %s (pid %d) left running", key, pid)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(mine) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in the directory the lab did not create: %v, want only %s", names, filepath.Base(mine))
	}
}

// TestLoadTakesOnlyALabsRecord: a state file without the lab's marker, or one recording another
// directory, is not taken for a lab (and so Down never runs on it).
func TestLoadTakesOnlyALabsRecord(t *testing.T) {
	for _, tt := range []struct{ name, content string }{
		{"no marker", `{"Dir":"%s","Netns":["wd-ul"]}`},
		{"another directory", `{"Kind":"weft-lab/v1","Dir":"/elsewhere","Netns":["wd-ul"]}`},
		{"not JSON", `wd-ul`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(statePath(dir), fmt.Appendf(nil, tt.content, dir), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir, nil); !errors.Is(err, ErrNoLab) {
				t.Fatalf("Load = %v, want ErrNoLab", err)
			}
		})
	}
	if _, err := Load(t.TempDir(), nil); !errors.Is(err, ErrNoLab) {
		t.Fatalf("Load of a directory without a record = %v, want ErrNoLab", err)
	}
}

// TestLabProcess: a process is the lab's only when it runs weftd or `weft-demo etcd` with the
// lab's directory on its command line.
func TestLabProcess(t *testing.T) {
	dir := "/run/weft-demo"
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"/opt/bin/weftd", "-state-dir", dir + "/node1/state"}, true},
		{[]string{"weftd", "-state-dir", "/var/lib/weft"}, false},
		{[]string{"weftd", "-state-dir", dir + "-other/node1"}, false},
		{[]string{"bin/weft-demo", "etcd", "-data-dir", dir + "/etcd"}, true},
		{[]string{"weft-demo", "up", "-dir", dir}, false},
		{[]string{"sleep", dir}, false},
	} {
		if got := labProcess(tt.args, dir); got != tt.want {
			t.Errorf("labProcess(%q) = %t, want %t", tt.args, got, tt.want)
		}
	}
	if ours(os.Getpid(), dir) || ours(0, dir) {
		t.Error("the test itself, or no process, counts as the lab's")
	}
}

// TestOptionDefaults: the lab's defaults.
func TestOptionDefaults(t *testing.T) {
	var o Options
	o.setDefaults()
	if o.Prefix != "wd-" || o.PodNetwork != netip.MustParsePrefix("10.244.0.0/16") || o.Underlay != netip.MustParsePrefix("198.18.0.0/24") || o.Log == nil {
		t.Errorf("defaults %+v", o)
	}
}
