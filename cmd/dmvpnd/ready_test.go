package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loopDaemon is a fake with a readiness signal and a probe-able loop.
type loopDaemon struct {
	*fakeDaemon
	ready chan struct{}
	stuck chan struct{} // closed: Ping never answers
}

func (d *loopDaemon) Ready() <-chan struct{} { return d.ready }

func (d *loopDaemon) Ping(ctx context.Context) error {
	select {
	case <-d.stuck:
		<-ctx.Done()
		return ctx.Err()
	default:
		return nil
	}
}

func runLoopDaemon(t *testing.T, d *loopDaemon, wd time.Duration) (notes, chan os.Signal, chan int, *lockedBuffer) {
	t.Helper()
	h := launch(t, d, &loader{}, wd)
	return h.notes, h.sigs, h.done, h.logs
}

// TestReadyWaitsForTheDataplane: no READY=1 before the daemon says its
// dataplane is in place.
func TestReadyWaitsForTheDataplane(t *testing.T) {
	d := &loopDaemon{fakeDaemon: newFakeDaemon(), ready: make(chan struct{}), stuck: make(chan struct{})}
	n, sigs, done, _ := runLoopDaemon(t, d, 0)
	<-d.started
	select {
	case s := <-n:
		if strings.HasPrefix(s, "READY=1") {
			t.Fatal("READY=1 before the dataplane was ready")
		}
	case <-time.After(100 * time.Millisecond):
	}
	close(d.ready)
	n.waitFor(t, "READY=1")
	sigs <- syscall.SIGTERM
	if code := <-done; code != exitOK {
		t.Errorf("exit = %d", code)
	}
}

// TestWatchdogNeedsALiveLoop: pings flow while the loop answers and stop
// when it is stuck.
func TestWatchdogNeedsALiveLoop(t *testing.T) {
	d := &loopDaemon{fakeDaemon: newFakeDaemon(), ready: make(chan struct{}), stuck: make(chan struct{})}
	close(d.ready)
	n, sigs, done, logs := runLoopDaemon(t, d, 40*time.Millisecond)
	n.waitFor(t, "WATCHDOG=1")
	close(d.stuck)
	// Drain what was already in flight, then expect silence.
	deadline := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case <-n:
		case <-time.After(10 * time.Millisecond):
		}
	}
	timeout := time.After(300 * time.Millisecond)
	for quiet := false; !quiet; {
		select {
		case s := <-n:
			if s == "WATCHDOG=1" {
				t.Fatal("watchdog pinged while the loop is stuck")
			}
		case <-timeout:
			quiet = true
		}
	}
	if !strings.Contains(logs.String(), "controller loop does not answer") {
		t.Errorf("stuck loop not logged:\n%s", logs.String())
	}
	sigs <- syscall.SIGTERM
	if code := <-done; code != exitOK {
		t.Errorf("exit = %d", code)
	}
}
