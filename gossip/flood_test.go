package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// aliveWire is memberlist's alive message as it travels (memberlist does not export it).
type aliveWire struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

// aliveMsgType is memberlist's message type of an alive message.
const aliveMsgType = 4

type admitFunc func(name string, addr netip.AddrPort, meta []byte) error

func (f admitFunc) Admit(name string, addr netip.AddrPort, meta []byte) error {
	return f(name, addr, meta)
}

// forgeAlive encodes an alive message for a member that does not exist, as an attacker on the
// underlay without a keyring (the cluster runs -gossip-insecure) would send it.
func forgeAlive(t testing.TB, label, name string) []byte {
	var buf bytes.Buffer
	buf.WriteByte(aliveMsgType)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(&aliveWire{
		Incarnation: 1, Node: name, Addr: net.IPv4(127, 0, 0, 2).To4(), Port: 7946,
		Vsn: []uint8{memberlist.ProtocolVersionMin, memberlist.ProtocolVersionMax, memberlist.ProtocolVersionMax, 0, 0, 0},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := memberlist.AddLabelHeaderToPacket(buf.Bytes(), label)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flood runs a member with admit and sends it n forged alive messages from n names; it returns
// the member's stats and how much its heap grew.
func flood(t *testing.T, admit Admitter, n int) (MemberStats, int64) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName, cfg.Label, cfg.Admit = "victim", "weft-flood", admit
	cfg.BindAddr = netip.MustParseAddr("127.0.0.1")
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BindPort = l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	cfg.Logger = slog.New(slog.DiscardHandler)
	m, err := NewMember(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for m.Stats().Members != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", cfg.BindPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	for i := range n {
		if _, err := conn.Write(forgeAlive(t, cfg.Label, fmt.Sprintf("forged-%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(time.Millisecond) // stay inside memberlist's handoff queue
		}
	}
	time.Sleep(500 * time.Millisecond)
	return m.Stats(), heap() - before
}

// TestForgedMemberFlood: 100,000 forged alive messages, each for a new member, leave the member
// list at this node alone and grow the heap by at most a few MB when the Admitter refuses them;
// without admission the same flood fills the member list (the attack, reproduced).
func TestForgedMemberFlood(t *testing.T) {
	refuse := admitFunc(func(string, netip.AddrPort, []byte) error { return errors.New("no lease names the node") })
	st, grew := flood(t, refuse, 100000)
	t.Logf("FIGURE gossip flood: 100000 forged alive messages, %d refused, members %d, heap %+.1f MB", st.Refused, st.Members, float64(grew)/(1<<20))
	if st.Members != 1 || st.Refused < 1000 || st.RefusedMembers > MaxRefused {
		t.Errorf("after the flood: %+v; want only this node a member, the forgeries refused and at most %d remembered", st, MaxRefused)
	}
	if grew > 5<<20 {
		t.Errorf("the heap grew by %.1f MB, want at most 5", float64(grew)/(1<<20))
	}
	t.Run("without admission", func(t *testing.T) {
		st, _ := flood(t, nil, 2000)
		t.Logf("without admission: %d of 2000 forged members retained", st.Members-1)
		if st.Members < 500 {
			t.Errorf("members %d after 2000 forged alive messages without admission; the flood did not reproduce", st.Members)
		}
	})
}
