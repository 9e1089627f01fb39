package lab

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	n := 0
	err := WaitFor(context.Background(), time.Millisecond, func(context.Context) error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("WaitFor = %v after %d calls, want nil after 3", err, n)
	}

	boom := errors.New("boom")
	calls := 0
	err = WaitFor(context.Background(), time.Millisecond, func(context.Context) error { calls++; return Permanent(boom) })
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("WaitFor(permanent) = %v after %d calls", err, calls)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = WaitFor(ctx, time.Millisecond, func(context.Context) error { return boom })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, boom) {
		t.Errorf("WaitFor(timeout) = %v, want deadline and last error", err)
	}
}
