package gossip

import (
	"net/netip"
	"sync"
	"time"
)

const (
	// MaxRefused bounds the refused members a Member remembers.
	MaxRefused = 256
	// RefusedWindow is how long a refusal is remembered: a member refused again within it is not
	// logged again.
	RefusedWindow = time.Minute
	// maxRefusedLogs bounds the refusals logged per window, whatever the number of forged names.
	maxRefusedLogs = 20
)

// refusals remembers the members refused lately, at most MaxRefused of them for RefusedWindow, so
// that a refusal is logged once per member and window, and at most maxRefusedLogs a window,
// whatever the rate of forged messages, in bounded memory.
type refusals struct {
	mu     sync.Mutex
	seen   map[refusal]time.Time
	window time.Time
	logged int
	// swept is when expire last ran because the map was full (at most once a second).
	swept time.Time
}

type refusal struct {
	name string
	addr netip.AddrPort
}

// note records a refusal at now and reports whether to log it: it is new in the window and the
// window's log budget is not spent.
func (r *refusals) note(name string, addr netip.AddrPort, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := refusal{name, addr}
	if at, ok := r.seen[k]; ok && now.Sub(at) < RefusedWindow {
		return false
	}
	if r.seen == nil {
		r.seen = make(map[refusal]time.Time)
	}
	if len(r.seen) >= MaxRefused && now.Sub(r.swept) >= time.Second {
		r.expire(now)
		r.swept = now
	}
	for k := range r.seen {
		if len(r.seen) < MaxRefused {
			break
		}
		delete(r.seen, k) // any one: all are recent, and a dropped one is merely logged again
	}
	r.seen[k] = now
	if now.Sub(r.window) >= RefusedWindow {
		r.window, r.logged = now, 0
	}
	r.logged++
	return r.logged <= maxRefusedLogs
}

// count returns how many refusals the window holds at now.
func (r *refusals) count(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(now)
	return len(r.seen)
}

func (r *refusals) expire(now time.Time) {
	for k, at := range r.seen {
		if now.Sub(at) >= RefusedWindow {
			delete(r.seen, k)
		}
	}
}
