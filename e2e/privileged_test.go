package e2e

import (
	"context"
	"os"
	"strings"
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
	for _, tc := range []struct {
		pkg string
		run string // -test.run for the package ("" for all)
		// mustRun names a test that must run, not skip, in the lab
		// (its host check skips it on kernels without the feature).
		mustRun string
		// setup runs in the guest before the package's tests.
		setup string
	}{
		{pkg: "./kernel"},
		// TCP MD5 (bgp.password): the guest's kernel signs segments
		// (CONFIG_TCP_MD5SIG); it used to skip because Go made the
		// listeners MPTCP, which refuses TCP_MD5SIG (go.mod's godebug).
		// Its speakers talk over 127.0.1.x: the guest's lo starts down.
		{pkg: "./routing", run: "^TestIntegrationTCPMD5$", mustRun: "TestIntegrationTCPMD5", setup: "ip link set lo up"},
	} {
		pkg := tc.pkg
		pargs := args
		if tc.run != "" && len(args) == 0 {
			pargs = []string{"-test.run", tc.run}
		}
		t.Run(pkg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if tc.setup != "" {
				if _, err := l.Run(ctx, tc.setup); err != nil {
					t.Fatal(err)
				}
			}
			res, err := l.GoTest(ctx, pkg, pargs...)
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
			selected := len(args) == 0 || strings.Contains(res.Output, "=== RUN   "+tc.mustRun+"\n")
			if tc.mustRun != "" && selected && !strings.Contains(res.Output, "--- PASS: "+tc.mustRun+" ") {
				t.Fatalf("%s: %s did not pass in the lab (skipped?)", pkg, tc.mustRun)
			}
		})
	}
}
