package e2e

// Profiles of dmvpnd in TestBenchLab (DMVPND_BENCH_PROFILE=1): the hub's
// dmvpnd serves net/http/pprof on its namespace's loopback
// (cmd/dmvpnd/pprof.go) and the bench saves, for the first repetition at
// the largest N, a CPU profile of the burst, of the idle window and of
// the refreshes, and heap profiles before and after the idle window, as
// pprof-*.pb.gz in the run directory (go tool pprof bin/dmvpnd FILE).

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// blPprofAddr is where the hub's dmvpnd serves pprof in profile mode.
const blPprofAddr = "127.0.0.1:6060"

// blProfile is one CPU profile being taken (nil: none).
type blProfile struct {
	p    *lab.Proc
	path string
}

// startCPUProfile starts a CPU profile of the hub's dmvpnd over d, saved as
// pprof-NAME.pb.gz; nil outside profile mode.
func (b *blBench) startCPUProfile(ctx context.Context, name string, d time.Duration) *blProfile {
	if !b.cfg.profile {
		return nil
	}
	path := filepath.Join(b.l.Dir(), "pprof-"+name+".pb.gz")
	p, err := b.hub.Start(ctx, "pprof-"+name, fmt.Sprintf("curl -sS --max-time %d -o %s http://%s/debug/pprof/profile?seconds=%d",
		int(d.Seconds())+60, path, blPprofAddr, max(int(d.Seconds()), 1)))
	if err != nil {
		b.t.Errorf("profile %s: %v", name, err)
		return nil
	}
	return &blProfile{p: p, path: path}
}

// wait waits for the profile to be written (a profile overlapping the
// next one would be refused).
func (pr *blProfile) wait(ctx context.Context, t *testing.T) {
	if pr == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		if pr.p.Alive(ctx) {
			return fmt.Errorf("profile %s still being taken", pr.path)
		}
		return nil
	}); err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	t.Logf("profile: %s", pr.path)
}

// heapProfile saves the hub dmvpnd's heap profile as pprof-NAME.pb.gz.
func (b *blBench) heapProfile(ctx context.Context, name string) {
	if !b.cfg.profile {
		return
	}
	path := filepath.Join(b.l.Dir(), "pprof-"+name+".pb.gz")
	if _, err := b.hub.Run(ctx, fmt.Sprintf("curl -sS --max-time 30 -o %s http://%s/debug/pprof/heap", path, blPprofAddr)); err != nil {
		b.t.Errorf("heap profile %s: %v", name, err)
		return
	}
	b.t.Logf("profile: %s", path)
}
