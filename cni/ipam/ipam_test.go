package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func render(t *testing.T, s *Store) string {
	t.Helper()
	allocs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, al := range allocs {
		fmt.Fprintf(&b, "%s %s/%s\n", al.Addr, al.ContainerID, al.IfName)
	}
	return b.String()
}

func att(id string) Attachment { return Attachment{ContainerID: id, IfName: "eth0"} }

func TestAllocateRoundRobinAndExhaustion(t *testing.T) {
	subnet := netip.MustParsePrefix("10.244.7.0/29")
	s := open(t, t.TempDir())
	type step struct {
		op, id string
		want   string // address, or "exhausted"
	}
	steps := []step{
		{"alloc", "a", "10.244.7.2"},
		{"alloc", "b", "10.244.7.3"},
		{"alloc", "a", "10.244.7.2"}, // idempotent
		{"alloc", "c", "10.244.7.4"},
		{"alloc", "d", "10.244.7.5"},
		{"alloc", "e", "10.244.7.6"},
		{"alloc", "f", "exhausted"},
		{"release", "c", "10.244.7.4"},
		{"alloc", "g", "10.244.7.4"},
		{"release", "b", "10.244.7.3"},
		{"release", "a", "10.244.7.2"},
		{"alloc", "h", "10.244.7.2"}, // after .4, .5 and .6 are taken: wraps to the first free
		{"alloc", "i", "10.244.7.3"},
		{"release", "nobody", ""},
	}
	for i, st := range steps {
		var got string
		switch st.op {
		case "alloc":
			addr, _, err := s.Allocate(att(st.id), subnet)
			switch {
			case errors.Is(err, ErrExhausted):
				got = "exhausted"
				if !strings.Contains(err.Error(), "10.244.7.0/29") || !strings.Contains(err.Error(), "5 addresses") {
					t.Errorf("exhaustion error %q does not name the subnet and its size", err)
				}
			case err != nil:
				t.Fatalf("step %d: %v", i, err)
			default:
				got = addr.String()
			}
		case "release":
			addrs, err := s.Release(att(st.id))
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			got = strings.Trim(fmt.Sprint(addrs), "[]")
		}
		if got != st.want {
			t.Errorf("step %d %s %s: got %q, want %q", i, st.op, st.id, got, st.want)
		}
	}
	want := "10.244.7.2 h/eth0\n10.244.7.3 i/eth0\n10.244.7.4 g/eth0\n10.244.7.5 d/eth0\n10.244.7.6 e/eth0\n"
	if got := render(t, s); got != want {
		t.Errorf("state:\n%s\nwant:\n%s", got, want)
	}
}

func TestNeverNetworkGatewayBroadcast(t *testing.T) {
	for _, p := range []string{"10.244.0.0/30", "10.244.1.0/28", "10.244.2.0/24"} {
		subnet := netip.MustParsePrefix(p)
		s := open(t, t.TempDir())
		var n int
		for ; ; n++ {
			addr, _, err := s.Allocate(att(fmt.Sprint(n)), subnet)
			if errors.Is(err, ErrExhausted) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			gw := subnet.Addr().Next()
			bcast := subnet.Addr()
			for range 1<<(32-subnet.Bits()) - 1 {
				bcast = bcast.Next()
			}
			if !subnet.Contains(addr) || addr == subnet.Addr() || addr == gw || addr == bcast {
				t.Fatalf("%s: allocated %s", p, addr)
			}
		}
		if want := 1<<(32-subnet.Bits()) - 3; n != want {
			t.Errorf("%s: %d addresses before exhaustion, want %d", p, n, want)
		}
	}
}

func TestPersistedFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr, fresh, err := s.Allocate(Attachment{"abc123", "net1"}, netip.MustParsePrefix("10.244.3.0/24"))
	if err != nil || !fresh {
		t.Fatalf("Allocate: %v, fresh=%t", err, fresh)
	}
	s.Close()
	data, err := os.ReadFile(filepath.Join(dir, addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "abc123\nnet1" {
		t.Errorf("allocation file holds %q", data)
	}
	s = open(t, dir)
	got, ok, err := s.Get(Attachment{"abc123", "net1"})
	if err != nil || !ok || got != addr {
		t.Errorf("Get after reopen = %s, %t, %v; want %s", got, ok, err, addr)
	}
	again, fresh, err := s.Allocate(Attachment{"abc123", "net1"}, netip.MustParsePrefix("10.244.3.0/24"))
	if err != nil || fresh || again != addr {
		t.Errorf("repeated Allocate = %s, fresh=%t, %v; want %s, not fresh", again, fresh, err, addr)
	}
}

func TestSubnetChangeMovesAllocation(t *testing.T) {
	s := open(t, t.TempDir())
	a := att("x")
	if _, _, err := s.Allocate(a, netip.MustParsePrefix("10.244.1.0/24")); err != nil {
		t.Fatal(err)
	}
	addr, fresh, err := s.Allocate(a, netip.MustParsePrefix("10.244.9.0/24"))
	if err != nil || !fresh || addr != netip.MustParseAddr("10.244.9.2") {
		t.Fatalf("Allocate in new subnet = %s, fresh=%t, %v", addr, fresh, err)
	}
	if got, want := render(t, s), "10.244.9.2 x/eth0\n"; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
}

func TestDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	subnet := netip.MustParsePrefix("10.244.5.0/29")
	// A crash may leave an empty allocation file and a garbled pointer; neither may stop allocation.
	for name, content := range map[string]string{"10.244.5.2": "", lastFile: "garbage", "README": "not an address"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, dir)
	addr, _, err := s.Allocate(att("a"), subnet)
	if err != nil || addr != netip.MustParseAddr("10.244.5.3") {
		t.Fatalf("Allocate = %s, %v; want 10.244.5.3", addr, err)
	}
	if got, want := render(t, s), "10.244.5.2 /\n10.244.5.3 a/eth0\n"; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
	removed, err := s.Retain(func(a Attachment) bool { return a.ContainerID == "a" })
	if err != nil || len(removed) != 1 || removed[0].Addr != netip.MustParseAddr("10.244.5.2") {
		t.Errorf("Retain removed %v, %v; want the unreadable 10.244.5.2", removed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Errorf("Retain touched a file that is not an allocation: %v", err)
	}
}

func TestRetain(t *testing.T) {
	s := open(t, t.TempDir())
	subnet := netip.MustParsePrefix("10.244.4.0/24")
	for _, a := range []Attachment{{"a", "eth0"}, {"a", "net1"}, {"b", "eth0"}, {"c", "eth0"}} {
		if _, _, err := s.Allocate(a, subnet); err != nil {
			t.Fatal(err)
		}
	}
	valid := map[Attachment]bool{{"a", "eth0"}: true, {"c", "eth0"}: true}
	removed, err := s.Retain(func(a Attachment) bool { return valid[a] })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(removed), "[{10.244.4.3 {a net1}} {10.244.4.4 {b eth0}}]"; got != want {
		t.Errorf("removed %s, want %s", got, want)
	}
	if got, want := render(t, s), "10.244.4.2 a/eth0\n10.244.4.5 c/eth0\n"; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
}

func TestInvalidSubnet(t *testing.T) {
	s := open(t, t.TempDir())
	for _, p := range []string{"10.244.0.0/31", "10.244.0.0/32", "10.244.0.1/24", "fd00::/64"} {
		if _, _, err := s.Allocate(att("a"), netip.MustParsePrefix(p)); !errors.Is(err, ErrInvalidSubnet) {
			t.Errorf("%s: err = %v, want ErrInvalidSubnet", p, err)
		}
	}
}

// TestConcurrentStores checks the lock: Stores opened at once on one directory never hand out an
// address twice.
func TestConcurrentStores(t *testing.T) {
	dir := t.TempDir()
	subnet := netip.MustParsePrefix("10.244.8.0/24")
	const n = 32
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := Open(dir)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			addrs[i], _, errs[i] = s.Allocate(att(fmt.Sprint("c", i)), subnet)
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("store %d: %v", i, errs[i])
		}
		if j, dup := seen[addrs[i]]; dup {
			t.Errorf("stores %d and %d both got %s", j, i, addrs[i])
		}
		seen[addrs[i]] = i
	}
	s := open(t, dir)
	allocs, err := s.List()
	if err != nil || len(allocs) != n {
		t.Errorf("%d allocations on disk (%v), want %d", len(allocs), err, n)
	}
}
