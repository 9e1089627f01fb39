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
// while developing one test.
func TestPrivileged(t *testing.T) {
	var args []string
	if run := os.Getenv("DMVPND_PRIV_RUN"); run != "" {
		args = append(args, "-test.run", run)
	}
	l := lab.New(t, lab.Options{})
	for _, pkg := range []string{"./kernel"} {
		t.Run(pkg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
