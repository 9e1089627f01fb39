package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/cmd/internal/version"
	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

// Lifecycle bounds.
const (
	reloadTimeout   = 20 * time.Second
	shutdownTimeout = 10 * time.Second
)

// serve runs the daemon with a validated cfg until SIGTERM/SIGINT or ctx
// ends, and returns the exit status.
func (rt *app) serve(ctx context.Context, path string, cfg *config.Config) int {
	level := zap.NewAtomicLevelAt(zapLevel(cfg.Log.Level))
	log := newLogger(cfg.Log, level, rt.stderr).With(zap.String("node", cfg.Tunnel.Name))
	defer func() { _ = log.Sync() }()
	ver := version.Version()
	log.Info("dmvpnd starting", zap.String("version", ver), zap.String("commit", version.Commit()), zap.String("config", path),
		zap.String("role", string(cfg.NHRP.Role)), zap.Uint32("nhrp_network_id", cfg.NHRP.NetworkID), zap.Stringer("tunnel", cfg.Tunnel.Address))
	if rt.procs > 0 {
		source := "dmvpnd's default (one event loop: a second processor only adds thread wake-ups)"
		if !rt.procsDefault {
			source = "the environment's " + procsEnv
		}
		log.Info("Go code runs on "+strconv.Itoa(rt.procs)+" processor(s)", zap.Int("gomaxprocs", rt.procs), zap.String("from", source))
	}
	if rt.thpErr != nil {
		log.Warn("transparent huge pages stay on for dmvpnd: where the kernel's mode is \"always\", its RSS can grow while idle", zap.Error(rt.thpErr))
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration is valid but weak", zap.String("warning", w))
	}

	m := metrics.New(ver)
	d, err := rt.newDaemon(cfg, Deps{Log: log, Metrics: m, Version: ver, Now: rt.now})
	if err != nil {
		log.Error("cannot build the dataplane", zap.Error(err))
		return exitFailure
	}
	sup := &supervisor{path: path, load: rt.load, parse: parseConfig, daemon: d, log: log, level: level, metrics: m, notify: rt.notify, cfg: cfg}

	ln, err := api.Listen(cfg.Control.Socket, cfg.Control.Group)
	if err != nil {
		log.Error("cannot open the control socket", zap.Error(err))
		return exitFailure
	}
	apiSrv := api.NewServer(control{Source: d, sup: sup}, api.WithLevel(level), api.WithLogger(log.Named("api")))
	go func() {
		if err := apiSrv.Serve(ln); err != nil {
			log.Error("control API stopped", zap.Error(err))
		}
	}()
	defer shutdownHTTP(log, "control API", apiSrv.Shutdown)

	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			log.Error("cannot open the metrics listener", zap.Error(err))
			return exitFailure
		}
		rt.metricsAddr = mln.Addr().String()
		msrv := &http.Server{Handler: m.Mux(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := msrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics endpoint stopped", zap.Error(err))
			}
		}()
		defer shutdownHTTP(log, "metrics", msrv.Shutdown)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()

	if r, ok := d.(readier); ok {
		select {
		case <-r.Ready():
		case err := <-runDone:
			log.Error("dataplane failed to start", zap.Error(err))
			return exitFailure
		case <-ctx.Done():
			return exitOK
		}
	}

	var wd <-chan time.Time
	var wdTimeout time.Duration
	if iv, err := rt.watchdog(); err != nil {
		log.Warn("systemd watchdog settings unreadable", zap.Error(err))
	} else if iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		wd = t.C
		wdTimeout = iv / 4
		log.Info("systemd watchdog enabled", zap.Duration("interval", iv))
	}

	rt.notify("READY=1")
	rt.notify(fmt.Sprintf("STATUS=running (%s %s)", cfg.NHRP.Role, cfg.Tunnel.Name))
	log.Info("dmvpnd ready", zap.String("control", cfg.Control.Socket), zap.String("metrics", rt.metricsAddr))

	code, exited := rt.loop(ctx, log, sup, runDone, wd, heartbeat(d, wdTimeout))

	rt.notify("STOPPING=1")
	stopRun()
	if !exited {
		select {
		case err := <-runDone:
			if err != nil {
				log.Error("dataplane stopped with an error", zap.Error(err))
				code = exitFailure
			}
		case <-time.After(shutdownTimeout):
			log.Error("dataplane did not stop in time", zap.Duration("timeout", shutdownTimeout))
			code = exitFailure
		}
	}
	log.Info("dmvpnd stopped", zap.Int("exit", code))
	return code
}

// loop handles signals, the watchdog and an unexpected dataplane exit. It
// returns the exit status and whether the dataplane has already returned.
func (rt *app) loop(ctx context.Context, log *zap.Logger, sup *supervisor, runDone <-chan error, wd <-chan time.Time, alive func(context.Context) error) (int, bool) {
	for {
		select {
		case <-ctx.Done():
			return exitOK, false
		case sig := <-rt.signals:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP: reloading configuration")
				rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
				_, _ = sup.reload(rctx, api.ReloadRequest{}) // logged; the old configuration keeps running
				cancel()
				continue
			}
			log.Info("shutting down", zap.Stringer("signal", sig))
			return exitOK, false
		case err := <-runDone:
			log.Error("dataplane exited unexpectedly", zap.Error(err))
			return exitFailure, true
		case <-wd:
			if err := alive(ctx); err != nil {
				log.Error("controller loop does not answer: withholding the watchdog ping", zap.Error(err))
				continue
			}
			rt.notify("WATCHDOG=1")
		}
	}
}

// heartbeat probes the daemon's loop for the watchdog, bounded by timeout.
func heartbeat(d Daemon, timeout time.Duration) func(context.Context) error {
	p, ok := d.(pinger)
	if !ok {
		return func(context.Context) error { return nil }
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return p.Ping(ctx)
	}
}

func shutdownHTTP(log *zap.Logger, what string, shutdown func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("shutdown "+what, zap.Error(err))
	}
}
