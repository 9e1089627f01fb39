package main

import (
	"github.com/dmvpnd/dmvpnd/controller"
	"github.com/dmvpnd/dmvpnd/controller/config"
)

// newDaemon is the one place the binary chooses its dataplane: the
// controller over the real kernel, strongSwan and GoBGP.
func newDaemon(cfg *config.Config, deps Deps) (Daemon, error) {
	return controller.NewSystem(cfg, deps.Log, deps.Metrics, deps.Version)
}
