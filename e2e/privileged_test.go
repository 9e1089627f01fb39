package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestPrivileged runs packages' own privileged tests (gated there by
// DMVPND_PRIVILEGED=1) as root inside the lab, one fresh guest for all.
// DMVPND_PRIV_RUN, when set, is passed as -test.run to narrow the run
// while developing one test. DMVPND_PRIV_BENCH runs the matching
// benchmarks once each (-test.bench, -test.benchtime 1x; tests only if
// DMVPND_PRIV_RUN is set too).
func TestPrivileged(t *testing.T) {
	var args []string
	timeout := 5 * time.Minute
	run := os.Getenv("DMVPND_PRIV_RUN")
	if bench := os.Getenv("DMVPND_PRIV_BENCH"); bench != "" {
		args = append(args, "-test.bench", bench, "-test.benchtime", "1x", "-test.benchmem")
		if run == "" {
			run = "^$"
		}
		timeout = 30 * time.Minute
	}
	if run != "" {
		args = append(args, "-test.run", run)
	}
	l := lab.New(t, lab.Options{})
	for _, pkg := range []string{"./kernel"} {
		t.Run(pkg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			res, err := l.GoTest(ctx, pkg, args...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Binary == "" {
				t.Logf("%s has no tests yet", pkg)
				return
			}
			t.Logf("%s in the lab (log %s):\n%s", pkg, res.Log, res.Output)
			if res.Exit != 0 {
				t.Fatalf("%s: privileged tests failed in the lab (exit %d)", pkg, res.Exit)
			}
		})
	}
}
