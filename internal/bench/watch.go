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

// routeWatch follows weft's routes (rtm_protocol vxlan.DefaultRouteProtocol) in one namespace
// through a netlink subscription and records when each destination appeared, so convergence is
// timed by the kernel's own notifications rather than by polling.
type routeWatch struct {
	name string
	nsh  netns.NsHandle
	done chan struct{}

	mu      sync.Mutex
	seen    map[netip.Prefix]time.Time
	changed chan struct{}
	err     error
}

// watchRoutes subscribes to the routes of the named namespace.
func watchRoutes(name string) (*routeWatch, error) {
	nsh, err := netns.GetFromPath(nsutil.Path(name))
	if err != nil {
		return nil, err
	}
	w := &routeWatch{name: name, nsh: nsh, done: make(chan struct{}), seen: map[netip.Prefix]time.Time{}, changed: make(chan struct{})}
	ch := make(chan netlink.RouteUpdate, 4096)
	if err := netlink.RouteSubscribeWithOptions(ch, w.done, netlink.RouteSubscribeOptions{
		Namespace: &w.nsh, ReceiveBufferSize: 4 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) { w.fail(err) },
	}); err != nil {
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
		dst, ok := weftRoute(&u.Route)
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

// weftRoute returns the destination of a route weft owns in the main table.
func weftRoute(r *netlink.Route) (netip.Prefix, bool) {
	if int(r.Protocol) != vxlan.DefaultRouteProtocol || r.Dst == nil || (r.Table != 0 && r.Table != unix.RT_TABLE_MAIN) {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

// resync replaces what the watch holds by a dump of the kernel's routes, dated now. The kernel
// sends no notification for the IPv4 routes it flushes with a deleted device.
func (w *routeWatch) resync() error {
	h, err := netlink.NewHandleAt(w.nsh)
	if err != nil {
		return err
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("routes in %s: %w", w.name, err)
	}
	now := time.Now()
	seen := map[netip.Prefix]time.Time{}
	for i := range routes {
		if dst, ok := weftRoute(&routes[i]); ok {
			seen[dst] = now
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
	w.nsh.Close()
}
