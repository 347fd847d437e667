// Package poll waits for a condition by asking it again and again: the one polling loop of weft's
// lab, tests and tools.
package poll

import (
	"context"
	"fmt"
	"time"
)

// Interval is how often Until asks.
const Interval = 10 * time.Millisecond

// Until calls cond at once and then every Interval until it returns nil, and returns how long that
// took. When timeout passes or ctx ends first, the error names what was awaited and wraps cond's
// last error.
func Until(ctx context.Context, what string, timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("%s: not within %v: %w", what, timeout, err)
		case <-t.C:
		}
	}
}
