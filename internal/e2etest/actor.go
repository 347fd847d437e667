package e2etest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/gossip"
	"github.com/weft-net/weft/internal/lab"
)

// ActorEnv carries the spec of a gossip actor: StartActor starts the test binary again with it set,
// and the package's TestMain hands its value to RunGossipActor instead of running the tests. The
// actor runs as a child process inside a lab namespace, so that every socket memberlist opens,
// listening or dialing, is in that namespace.
const ActorEnv = "WEFT_E2E_GOSSIP_ACTOR"

// ActorSpec is what an actor runs until SIGTERM.
type ActorSpec struct {
	BindIP  netip.Addr
	KeyFile string
	Join    []string
	Members []ActorMember
	// Churn members join and leave over and over: each lives 200 ms to 1.2 s under a new name
	// (churn-<i>-<generation>), every other one claiming a subnet nobody leased.
	Churn, ChurnPort int
}

// ActorMember is one long-lived member; Meta may be nil (no meta advertised).
type ActorMember struct {
	Name    string
	Port    int
	KeyFile string
	Meta    *gossip.Meta
}

// RunGossipActor is the actor's main: it reports each long-lived member's stats and the churn
// cycles on stdout every 200 ms.
func RunGossipActor(raw string) int {
	var spec ActorSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "actor:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	var members []*gossip.Member
	for _, am := range spec.Members {
		keyFile := am.KeyFile
		if keyFile == "" {
			keyFile = spec.KeyFile
		}
		m, err := spec.member(am.Name, am.Port, keyFile, am.Meta)
		if err != nil {
			fmt.Fprintln(os.Stderr, "actor:", err)
			return 1
		}
		members = append(members, m)
		wg.Go(func() {
			if err := m.Run(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "actor:", am.Name, err)
			}
		})
	}
	var churned atomic.Int64
	for i := range spec.Churn {
		wg.Go(func() { spec.churn(ctx, i, &churned) })
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		for i, m := range members {
			s := m.Stats()
			fmt.Printf("stats %s members=%d joinFailures=%d\n", spec.Members[i].Name, s.Members, s.JoinFailures)
		}
		fmt.Printf("churn cycles=%d\n", churned.Load())
	}
	wg.Wait()
	return 0
}

// member builds one of the actor's gossip members.
func (spec *ActorSpec) member(name string, port int, keyFile string, meta *gossip.Meta) (*gossip.Member, error) {
	cfg := gossip.DefaultConfig()
	cfg.NodeName, cfg.BindAddr, cfg.BindPort, cfg.KeyFile, cfg.Label = name, spec.BindIP, port, keyFile, "weft"
	cfg.Join, cfg.Logger = spec.Join, slog.New(slog.DiscardHandler)
	m, err := gossip.NewMember(cfg, nil)
	if err == nil && meta != nil {
		err = m.SetMeta(*meta)
	}
	return m, err
}

// churn runs churner i until ctx ends: a member that joins, lives 0.2 to 1.2 s and leaves, again
// and again under a new name, half of them with a meta claiming a subnet.
func (spec *ActorSpec) churn(ctx context.Context, i int, cycles *atomic.Int64) {
	for gen := 0; ctx.Err() == nil; gen++ {
		var meta *gossip.Meta
		name := fmt.Sprintf("churn-%d-%d", i, gen)
		if i%2 == 0 {
			meta = &gossip.Meta{
				NodeName: name, Subnet: netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", 200+i)),
				PublicIP: spec.BindIP, VtepMAC: []byte{2, 0xcc, 0, 0, byte(i), byte(gen)}, VNI: 1, AttrVersion: 1,
			}
		}
		m, err := spec.member(name, spec.ChurnPort+i, spec.KeyFile, meta)
		if err != nil {
			fmt.Fprintln(os.Stderr, "actor:", err)
			return
		}
		life, cancel := context.WithTimeout(ctx, time.Duration(200+rand.IntN(1000))*time.Millisecond)
		err = m.Run(life)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "actor:", name, err)
		}
		cycles.Add(1)
	}
}

// Actor is a running gossip actor process.
type Actor struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen map[string]int
	done chan struct{}
}

// StartActor runs spec in a child process inside namespace nsName; it is stopped when t ends.
func StartActor(t *testing.T, l *lab.Lab, nsName string, spec ActorSpec) *Actor {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := &Actor{seen: map[string]int{}, done: make(chan struct{})}
	a.cmd = exec.Command(exe, "-test.run=^$")
	a.cmd.Env = append(os.Environ(), ActorEnv+"="+string(raw))
	a.cmd.Stderr = os.Stderr
	// Gone with the test process, even when it dies without cleaning up.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := NS(t, l, nsName).Do(func(ns.NetNS) error { return a.cmd.Start() }); err != nil {
		t.Fatal(err)
	}
	go a.read(out)
	t.Cleanup(a.Stop)
	return a
}

// read keeps the latest value of every "key=value" the actor prints, by line kind and name.
func (a *Actor) read(out io.Reader) {
	defer close(a.done)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		prefix := f[0]
		if f[0] == "stats" && len(f) > 2 {
			prefix, f = f[0]+" "+f[1], f[1:]
		}
		a.mu.Lock()
		for _, kv := range f[1:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				if n, err := strconv.Atoi(v); err == nil {
					a.seen[prefix+" "+k] = n
				}
			}
		}
		a.mu.Unlock()
	}
}

// Value returns the latest value the actor printed for key ("stats <member> members", "churn
// cycles").
func (a *Actor) Value(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[key]
}

// Stop ends the actor with SIGTERM (its members leave), or SIGKILL after 10 s.
func (a *Actor) Stop() {
	if a.cmd.ProcessState != nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
	}
	_ = a.cmd.Wait()
}
