// Command dmvpnd is the DMVPN daemon: one per hub or spoke, configured by one
// YAML file, controlled through a unix socket (dmvpnctl), observed through
// Prometheus metrics, run by systemd (Type=notify).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	// First, while the heap is still small.
	thpErr := disableTHP()
	procs, procsDefault := limitProcs(os.Getenv)
	if addr := os.Getenv(pprofEnv); addr != "" {
		if err := servePprof(addr); err != nil {
			fmt.Fprintln(os.Stderr, "dmvpnd:", err)
			os.Exit(2)
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	rt := &app{
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		load:      loadConfig,
		newDaemon: newDaemon,
		notify: func(state string) {
			_, _ = sd.SdNotify(false, state) // no-op outside systemd
		},
		watchdog:     func() (time.Duration, error) { return sd.SdWatchdogEnabled(false) },
		signals:      sigs,
		now:          time.Now,
		thpErr:       thpErr,
		procs:        procs,
		procsDefault: procsDefault,
	}
	os.Exit(rt.execute(context.Background(), os.Args[1:]))
}
