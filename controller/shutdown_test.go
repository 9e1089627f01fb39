package controller

import (
	"context"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// closeSignal wraps a miss watcher and reports when the channel it handed
// out has been closed (the watcher closes it once ctx ends).
type closeSignal struct {
	kernel.MissWatcher
	closed chan struct{}
}

func (w closeSignal) WatchMisses(ctx context.Context) (<-chan kernel.Miss, error) {
	in, err := w.MissWatcher.WatchMisses(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan kernel.Miss)
	go func() {
		defer close(w.closed)
		defer close(out)
		for m := range in {
			out <- m
		}
	}()
	return out, nil
}

// TestCleanShutdownReturnsNil stops a running hub 100 times while its loop is
// busy, so that when the loop selects again ctx.Done() and the closed miss
// channel are both ready (as when SIGTERM arrives during a reconcile). Run
// must return nil every time: it used to return "neighbor miss watcher
// stopped" about every other time. A Status call during start-up checks,
// under -race, that the start time is published safely.
func TestCleanShutdownReturnsNil(t *testing.T) {
	for i := range 100 {
		netw := kerneltest.NewNetwork()
		closed := make(chan struct{})
		n := start(t, netw, "hub", hubYAML("192.0.2.1", "10.0.0.1/24"), nil, func(d *Deps) {
			d.Misses = closeSignal{MissWatcher: d.Misses, closed: closed}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// Status reads the start time while Run sets it (race detector).
		if _, err := n.ctl.Status(ctx); err != nil {
			t.Fatalf("run %d: status: %v", i, err)
		}
		err := n.ctl.run(ctx, func() {
			n.cancel()
			<-closed
		})
		cancel()
		if err != nil {
			t.Fatalf("run %d: loop not reached: %v", i, err)
		}
		if err := <-n.done; err != nil {
			t.Fatalf("run %d: Run after a clean stop = %v, want nil", i, err)
		}
	}
}
