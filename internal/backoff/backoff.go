// Package backoff is the one retry delay weft uses: exponential from Min to Max, optionally
// jittered, reset after a success.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields delays Min, 2·Min, 4·Min, ... up to Max. With Jitter, each delay is drawn from
// [d/2, d] instead, so that many clients retrying together spread out. The zero value is not
// usable: set Min and Max (Min ≤ Max).
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool
	cur      time.Duration
}

// Next returns the next delay and advances the sequence.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(2*b.cur, b.Max)
	}
	if !b.Jitter || b.cur < 2 {
		return b.cur
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

// Reset starts the sequence again at Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Wait sleeps for the next delay. It returns false when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
