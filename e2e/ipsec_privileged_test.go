package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestIPsecPrivileged runs package ipsec's privileged tests (real charon
// per namespace, gated there by DMVPND_PRIVILEGED=1) as root inside the lab.
// DMVPND_IPSEC_RUN selects a subset (a -test.run pattern).
func TestIPsecPrivileged(t *testing.T) {
	l := lab.New(t, lab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run := "TestCharon"
	if r := os.Getenv("DMVPND_IPSEC_RUN"); r != "" {
		run = r // e.g. TestCharonNATSpokes
	}
	l.MustGoTest(ctx, "./ipsec", "-test.run", run, "-test.timeout", "14m")
}
