package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/weft-net/weft/internal/nsutil"
)

// Ping sends one ICMP echo request from namespace n to dst and waits up to timeout for the reply.
func Ping(n ns.NetNS, dst netip.Addr, seq int, timeout time.Duration) error {
	var c *icmp.PacketConn
	if err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("weft-lab")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		nr, peer, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: %w", dst, err)
		}
		m, err := icmp.ParseMessage(1, buf[:nr])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq&0xffff && peer.String() == dst.String() {
			return nil
		}
	}
}

// EchoServer listens on port in namespace n and answers every connection with the address it came
// from, so that a client can check that no NAT happened on the way.
func EchoServer(ctx context.Context, n ns.NetNS, port int) (net.Listener, error) {
	var ln net.Listener
	if err := n.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
				fmt.Fprintln(c, ap.Addr())
			}()
		}
	}()
	return ln, nil
}

// WhoAmI connects from namespace n to addr (an EchoServer) and returns the source address the server
// saw.
func WhoAmI(n ns.NetNS, addr netip.AddrPort, timeout time.Duration) (netip.Addr, error) {
	var c net.Conn
	if err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", addr.String(), timeout)
		return err
	}); err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return netip.Addr{}, err
	}
	buf := make([]byte, 64)
	nr, err := c.Read(buf)
	if err != nil {
		return netip.Addr{}, err
	}
	for nr > 0 && (buf[nr-1] == '\n' || buf[nr-1] == '\r') {
		nr--
	}
	return netip.ParseAddr(string(buf[:nr]))
}

// Throughput streams from namespace from to a sink in namespace to for d and returns bits/s.
func Throughput(from, to ns.NetNS, dst netip.Addr, d time.Duration) (float64, error) {
	var ln net.Listener
	if err := to.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(dst.String(), "0"))
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	var c net.Conn
	if err := from.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 2*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for time.Since(start) < d {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	n := <-got
	elapsed := time.Since(start)
	if n == 0 {
		return 0, errors.New("no bytes arrived")
	}
	return float64(n*8) / elapsed.Seconds(), nil
}

// HTTPGet fetches url from inside namespace n (e.g. a node's 127.0.0.1 health address).
func HTTPGet(ctx context.Context, n ns.NetNS, url string) (int, []byte, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: nsutil.Dialer(n)}, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
