package main

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

// Daemon is the dataplane controller that dmvpnd runs: it wires nhrp,
// kernel, ipsec and routing. The controller package satisfies it.
type Daemon interface {
	// Run programs and reconciles the dataplane until ctx ends, then
	// returns nil; an error means it could not keep running.
	Run(ctx context.Context) error
	// Reload applies a new, already validated configuration, leaving alone
	// whatever the change does not touch. On error the running configuration
	// must stay in effect.
	Reload(ctx context.Context, cfg *config.Config) error
	// Source feeds the control API (dmvpnctl show ..., clear ...).
	api.Source
}

// readier is a Daemon that says when it has programmed the dataplane;
// READY=1 waits for it. Daemons without it are ready once Run starts.
type readier interface{ Ready() <-chan struct{} }

// pinger is a Daemon whose main loop can be probed; the systemd watchdog
// is pinged only while it answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what a Daemon gets from dmvpnd.
type Deps struct {
	Log     *zap.Logger
	Metrics *metrics.Metrics
	Version string
	// Now is the clock.
	Now func() time.Time
}

// Factory builds the Daemon from a validated configuration. It must not
// touch the system: Run does.
type Factory func(cfg *config.Config, deps Deps) (Daemon, error)
