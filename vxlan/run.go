package vxlan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-net/weft/backend"
	"github.com/weft-net/weft/internal/backoff"
)

const (
	// subscribeBuffer is the receive buffer of each event socket; bursts of thousands of neighbour
	// or route events (a large SetPeers) fit without overrunning it.
	subscribeBuffer = 8 << 20
	// resubscribeMin and resubscribeMax bound the backoff between failed subscriptions.
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
	// retryMin is the first delay before retrying a failed reconcile; it doubles up to the resync
	// interval.
	retryMin = 200 * time.Millisecond
)

var errSubscriptionClosed = errors.New("netlink subscription closed")

// Run keeps the kernel converged with the desired state until ctx is done, then returns nil. It
// reconciles once at start, whenever a link, neighbour or route event shows a possible drift
// (collected for Config.Debounce), after a failed reconcile (with backoff), and every
// Config.ResyncInterval. A deleted device is recreated with the same MAC, a downed one set up, and
// every peer replayed. Run returns ErrAlreadyRunning if called while another Run is active.
func (b *Backend) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer b.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { b.watch(ctx, kick) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	resync := time.NewTicker(b.cfg.ResyncInterval)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var due time.Time // when the timer fires; zero while it is stopped
	var pending backend.Trigger
	arm := func(after time.Duration, why backend.Trigger) {
		at := time.Now().Add(after)
		if due.IsZero() || at.Before(due) {
			timer.Reset(after)
			due, pending = at, why
		}
	}
	retry := backoff.Backoff{Min: retryMin, Max: b.cfg.ResyncInterval}
	reconcile := func(why backend.Trigger) {
		err := b.reconcile(why)
		if err == nil {
			retry.Reset()
			return
		}
		delay := retry.Next()
		b.log.Warn("reconcile failed", "trigger", why, "err", err, "retry_in", delay)
		arm(delay, backend.TriggerRetry)
	}

	reconcile(backend.TriggerEvent)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
			arm(b.cfg.Debounce, backend.TriggerEvent)
		case <-timer.C:
			due = time.Time{}
			reconcile(pending)
		case <-resync.C:
			reconcile(backend.TriggerResync)
		}
	}
}

// notify records that a reconcile is wanted without blocking.
func notify(kick chan<- struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}

// watch keeps link, neighbour and route subscriptions in the backend's network namespace open until
// ctx is done, resubscribing with backoff when one fails. Every (re)subscription requests a
// reconcile, since events may have been lost meanwhile.
func (b *Backend) watch(ctx context.Context, kick chan<- struct{}) {
	bo := backoff.Backoff{Min: resubscribeMin, Max: resubscribeMax}
	for {
		start := time.Now()
		err := b.watchOnce(ctx, kick)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > resubscribeMax {
			bo.Reset()
		}
		b.log.Warn("kernel event subscription failed; resubscribing", "err", err)
		notify(kick)
		if !bo.Wait(ctx) {
			return
		}
	}
}

// watchOnce subscribes once and forwards relevant events as kicks until ctx is done (nil) or a
// subscription fails (its error).
func (b *Backend) watchOnce(ctx context.Context, kick chan<- struct{}) error {
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 64)
	neighs := make(chan netlink.NeighUpdate, 256)
	routes := make(chan netlink.RouteUpdate, 256)
	failed := make(chan error, 3)
	onError := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	// The library's readers block on full channels and close them when they stop: after done is
	// closed, drain every subscribed channel so its reader can exit.
	var drains []func()
	defer func() {
		close(done)
		for _, drain := range drains {
			drain()
		}
	}()

	nsh := b.nsh
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{
		Namespace: &nsh, ErrorCallback: onError, ReceiveBufferSize: subscribeBuffer, ReceiveBufferForceSize: true,
	}); err != nil {
		return fmt.Errorf("subscribe to links: %w", err)
	}
	drains = append(drains, func() { drainChan(links) })
	if err := netlink.NeighSubscribeWithOptions(neighs, done, netlink.NeighSubscribeOptions{
		Namespace: &nsh, ErrorCallback: onError, ReceiveBufferSize: subscribeBuffer, ReceiveBufferForceSize: true,
	}); err != nil {
		return fmt.Errorf("subscribe to neighbours: %w", err)
	}
	drains = append(drains, func() { drainChan(neighs) })
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{
		Namespace: &nsh, ErrorCallback: onError, ReceiveBufferSize: subscribeBuffer, ReceiveBufferForceSize: true,
	}); err != nil {
		return fmt.Errorf("subscribe to routes: %w", err)
	}
	drains = append(drains, func() { drainChan(routes) })
	notify(kick)

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case u, ok := <-links:
			if !ok {
				return fmt.Errorf("links: %w", errSubscriptionClosed)
			}
			if b.linkDrift(u) {
				notify(kick)
			}
		case u, ok := <-neighs:
			if !ok {
				return fmt.Errorf("neighbours: %w", errSubscriptionClosed)
			}
			if b.neighDrift(u) {
				notify(kick)
			}
		case u, ok := <-routes:
			if !ok {
				return fmt.Errorf("routes: %w", errSubscriptionClosed)
			}
			if b.routeDrift(u) {
				notify(kick)
			}
		}
	}
}

func drainChan[T any](ch <-chan T) {
	for range ch {
	}
}

// linkDrift: any change to the device (by name, or by its last known index) may need a repair.
func (b *Backend) linkDrift(u netlink.LinkUpdate) bool {
	attrs := u.Attrs()
	return attrs.Name == b.cfg.Device || int64(attrs.Index) == b.devIndex.Load()
}

// neighDrift reports whether a neighbour or FDB event on the device leaves the kernel different
// from the desired state: a desired entry deleted or changed, or a stray permanent entry added. The
// echoes of weft's own writes match the desired state and are ignored.
func (b *Backend) neighDrift(u netlink.NeighUpdate) bool {
	if int64(u.LinkIndex) != b.devIndex.Load() {
		return false
	}
	d := b.want.Load()
	deleted := u.Type == unix.RTM_DELNEIGH
	switch u.Family {
	case netlink.FAMILY_V4:
		ip, ok := addrOf(u.IP)
		if !ok {
			return false
		}
		spec, wanted := d.neigh[ip]
		switch {
		case deleted:
			return wanted
		case !wanted:
			return permanent(u.State)
		}
		return !permanent(u.State) || macOf(u.HardwareAddr) != spec.mac
	case unix.AF_BRIDGE:
		ip, ok := addrOf(u.IP)
		if !ok || len(u.HardwareAddr) != 6 {
			return false
		}
		spec, wanted := d.fdb[macOf(u.HardwareAddr)]
		matches := wanted && spec.dst == ip
		switch {
		case deleted:
			return matches
		case !matches:
			return permanent(u.State)
		}
		return !permanent(u.State)
	}
	return false
}

// routeDrift reports whether a main-table route event touches a desired destination in a way that
// differs from the desired route, or adds a route with weft's protocol that is not desired.
// Foreign routes elsewhere are ignored.
func (b *Backend) routeDrift(u netlink.RouteUpdate) bool {
	if u.Table != unix.RT_TABLE_MAIN {
		return false
	}
	dst, ok := prefixOf(u.Dst)
	if !ok {
		return false
	}
	dev := int(b.devIndex.Load())
	owned := b.ownership(dev).OwnsRoute(&u.Route)
	spec, wanted := b.want.Load().routes[dst]
	switch {
	case !wanted:
		return owned && u.Type == unix.RTM_NEWROUTE
	case u.Type == unix.RTM_DELROUTE:
		return true
	}
	return !owned || !routeMatches(&u.Route, b.route(dev, dst, spec))
}
