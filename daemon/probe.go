package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// prober sends one ICMP echo per peer per round to the peer's VTEP address (its subnet's .0, held by
// its VXLAN device), across the overlay, so a broken tunnel shows even when the control plane looks
// healthy.
type prober struct {
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	targets map[netip.Addr]string
	result  map[string]probeResult
}

type probeResult struct {
	Reachable bool
	RTT       time.Duration
	At        time.Time
}

func newProber(interval time.Duration, log *slog.Logger) *prober {
	return &prober{interval: interval, log: log.With("component", "probe"), result: map[string]probeResult{}}
}

// setTargets replaces the probed peers: VTEP address → peer name.
func (p *prober) setTargets(t map[netip.Addr]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = t
	names := make(map[string]bool, len(t))
	for _, n := range t {
		names[n] = true
	}
	for name := range p.result {
		if !names[name] {
			delete(p.result, name)
		}
	}
}

// results returns the last result per peer name.
func (p *prober) results() map[string]probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]probeResult, len(p.result))
	for k, v := range p.result {
		out[k] = v
	}
	return out
}

// Run probes every interval until ctx ends.
func (p *prober) Run(ctx context.Context) error {
	if p.interval <= 0 {
		return nil
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		p.log.Warn("data-plane probes disabled: cannot open an ICMP socket", "err", err)
		return nil
	}
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for seq := 0; ; seq++ {
		p.round(c, seq)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *prober) round(c *icmp.PacketConn, seq int) {
	p.mu.Lock()
	targets := make(map[netip.Addr]string, len(p.targets))
	for k, v := range p.targets {
		targets[k] = v
	}
	p.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	id := os.Getpid() & 0xffff
	sent := make(map[netip.Addr]time.Time, len(targets))
	for dst := range targets {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("weft-probe")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			continue
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err == nil {
			sent[dst] = time.Now()
		}
	}
	got := make(map[netip.Addr]time.Duration)
	timeout := min(p.interval, time.Second)
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for len(got) < len(sent) {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		ip, perr := netip.ParseAddr(peer.String())
		if !ok || perr != nil || e.ID != id || e.Seq != seq&0xffff {
			continue
		}
		if at, ok := sent[ip]; ok {
			got[ip] = time.Since(at)
		}
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for dst, name := range targets {
		rtt, ok := got[dst]
		prev, had := p.result[name]
		if had && prev.Reachable != ok {
			p.log.Info("peer reachability changed", "peer", name, "vtep", dst, "reachable", ok)
		}
		p.result[name] = probeResult{Reachable: ok, RTT: rtt, At: now}
	}
}
