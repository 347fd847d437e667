package etcdtest

import (
	"io"
	"net"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Proxy forwards TCP connections from a loopback port of its own to the server's client port. Cut
// drops every connection and refuses new ones until Restore: a network partition between the
// clients that dial the proxy and etcd, while the server and its other clients go on.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	srv    *Server
	wg     sync.WaitGroup
	closed bool
}

// NewProxy starts a proxy to the server; Close (or the server's Close) stops it.
func (s *Server) NewProxy() (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: s.clientURL.Host, conns: make(map[net.Conn]struct{}), srv: s}
	p.wg.Go(p.accept)
	s.addCloser(p.Close)
	return p, nil
}

// Endpoints are the URLs that reach the server through the proxy.
func (p *Proxy) Endpoints() []string { return []string{"http://" + p.ln.Addr().String()} }

// NewClient returns a client that reaches the server through the proxy, closed by the server's
// Close at the latest.
func (p *Proxy) NewClient() (*clientv3.Client, error) { return p.srv.newClient(p.Endpoints()) }

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections. Closing twice is a no-op.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers c unless the proxy is cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(up) {
		up.Close()
		p.untrack(c)
		return
	}
	// Either direction ending ends the connection.
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		p.untrack(dst, src)
	}
	wg.Go(func() { pipe(up, c) })
	wg.Go(func() { pipe(c, up) })
	wg.Wait()
}
