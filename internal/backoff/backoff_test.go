package backoff

import (
	"context"
	"testing"
	"time"
)

func TestSequence(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100e6, 200e6, 400e6, 800e6, 1e9, 1e9}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != b.Min {
		t.Fatalf("after Reset: %v", d)
	}
}

func TestJitter(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second, Jitter: true}
	for i, ceil := range []time.Duration{1e9, 2e9, 4e9, 8e9, 8e9} {
		if d := b.Next(); d < ceil/2 || d > ceil {
			t.Fatalf("delay %d = %v, want within [%v, %v]", i, d, ceil/2, ceil)
		}
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Min: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Fatal("Wait returned true on an ended context")
	}
}
