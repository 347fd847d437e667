package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if _, err := Until(context.Background(), "third call", time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("err %v after %d calls", err, n)
	}
	errNo := errors.New("never")
	_, err := Until(context.Background(), "the impossible", 120*time.Millisecond, func() error { return errNo })
	if !errors.Is(err, errNo) || !strings.Contains(err.Error(), "the impossible: not within 120ms") {
		t.Fatalf("timeout error %v", err)
	}
}
