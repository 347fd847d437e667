package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/internal/nsutil"
	"github.com/weft-net/weft/vxlan"
)

// ErrTimeout marks a convergence that did not happen within its deadline.
var ErrTimeout = errors.New("not within the deadline")

// routeWatch follows weft's routes in one namespace (those the VXLAN backend's ownership rule
// gives the device) through a netlink subscription and records when each destination appeared,
// so convergence is timed by the kernel's own notifications rather than by polling.
type routeWatch struct {
	name   string
	device string
	nsh    netns.NsHandle
	h      *netlink.Handle
	done   chan struct{}
	// hmu guards h and own, the ownership rule of the device as last resolved; the device is looked
	// up again when a route names another link (a recreated device has a new index).
	hmu sync.Mutex
	own vxlan.Ownership

	mu      sync.Mutex
	seen    map[netip.Prefix]time.Time
	changed chan struct{}
	err     error
}

// watchRoutes subscribes to the routes of the named namespace whose VXLAN device is device.
func watchRoutes(name, device string) (*routeWatch, error) {
	nsh, err := netns.GetFromPath(nsutil.Path(name))
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		return nil, err
	}
	w := &routeWatch{name: name, device: device, nsh: nsh, h: h, done: make(chan struct{}), seen: map[netip.Prefix]time.Time{}, changed: make(chan struct{})}
	ch := make(chan netlink.RouteUpdate, 4096)
	if err := netlink.RouteSubscribeWithOptions(ch, w.done, netlink.RouteSubscribeOptions{
		Namespace: &w.nsh, ReceiveBufferSize: 4 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) { w.fail(err) },
	}); err != nil {
		h.Close()
		nsh.Close()
		return nil, fmt.Errorf("subscribe to routes in %s: %w", name, err)
	}
	go w.follow(ch)
	if err := w.resync(); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *routeWatch) follow(ch <-chan netlink.RouteUpdate) {
	for u := range ch {
		now := time.Now()
		w.hmu.Lock()
		dst, ok := w.owned(&u.Route)
		w.hmu.Unlock()
		if !ok {
			continue
		}
		w.mu.Lock()
		switch u.Type {
		case unix.RTM_NEWROUTE:
			if _, had := w.seen[dst]; !had {
				w.seen[dst] = now
				w.notifyLocked()
			}
		case unix.RTM_DELROUTE:
			delete(w.seen, dst)
			w.notifyLocked()
		}
		w.mu.Unlock()
	}
	w.fail(errors.New("subscription closed"))
}

func (w *routeWatch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		select {
		case <-w.done:
		default:
			w.err = fmt.Errorf("route watch in %s: %w", w.name, err)
			w.notifyLocked()
		}
	}
}

func (w *routeWatch) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// owned returns the destination of r when it is one of weft's routes. The caller holds hmu.
func (w *routeWatch) owned(r *netlink.Route) (netip.Prefix, bool) {
	if r.LinkIndex != w.own.Device && r.LinkIndex != w.own.Underlay {
		// The device may be new since the rule was resolved; without one, nothing is weft's.
		w.own, _ = vxlan.OwnershipOf(w.h, w.device, vxlan.DefaultRouteProtocol)
	}
	if w.own.Device == 0 || !w.own.OwnsRoute(r) {
		return netip.Prefix{}, false
	}
	a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

// resync replaces what the watch holds by a dump of weft's routes, dated now (none while the
// device does not exist). The kernel
// sends no notification for the IPv4 routes it flushes with a deleted device.
func (w *routeWatch) resync() error {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	seen := map[netip.Prefix]time.Time{}
	var err error
	if w.own, err = vxlan.OwnershipOf(w.h, w.device, vxlan.DefaultRouteProtocol); err == nil {
		owned, err := w.own.Dump(w.h)
		if err != nil {
			return fmt.Errorf("routes in %s: %w", w.name, err)
		}
		now := time.Now()
		for i := range owned.Routes {
			if dst, ok := w.owned(&owned.Routes[i]); ok {
				seen[dst] = now
			}
		}
	}
	w.mu.Lock()
	w.seen = seen
	w.notifyLocked()
	w.mu.Unlock()
	return nil
}

// wait returns once cond holds over the routes seen (destination → when it appeared), or an error
// wrapping ErrTimeout after timeout.
func (w *routeWatch) wait(ctx context.Context, timeout time.Duration, cond func(map[netip.Prefix]time.Time) bool) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		ok, err, changed := cond(w.seen), w.err, w.changed
		w.mu.Unlock()
		switch {
		case ok:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%s: %w (%v)", w.name, ErrTimeout, timeout)
		}
	}
}

// when returns when dst appeared, if it is routed.
func (w *routeWatch) when(dst netip.Prefix) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[dst]
	return t, ok
}

func (w *routeWatch) close() {
	close(w.done)
	w.h.Close()
	w.nsh.Close()
}
