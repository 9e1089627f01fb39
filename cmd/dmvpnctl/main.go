// Command dmvpnctl inspects and controls a running dmvpnd through its control
// socket: the Cisco-style show commands, clears, reload, readiness and log
// level, plus offline tools (nhrp decode).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// env is what the commands need from the outside world, injected for tests.
type env struct {
	out, errOut io.Writer
	now         func() time.Time
	client      func(socket string) *api.Client
	// pollInterval is how often status --wait asks.
	pollInterval time.Duration
	// command runs a local program for tech-support (nil: os/exec).
	command func(ctx context.Context, name string, args ...string) ([]byte, error)
}

func main() {
	e := env{out: os.Stdout, errOut: os.Stderr, now: time.Now, client: api.NewClient, pollInterval: 500 * time.Millisecond}
	os.Exit(run(e, os.Args[1:]))
}

// run executes the command line and returns the exit status.
func run(e env, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(e.errOut, "dmvpnctl: %v\n", err)
		var es *exitStatus
		if errors.As(err, &es) {
			return es.code
		}
		return 1
	}
	return 0
}
