package main

import (
	"context"
	"fmt"
	"sync"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

// supervisor owns the running configuration and applies reloads (SIGHUP or
// dmvpnctl reload), one at a time.
type supervisor struct {
	path    string
	load    func(path string) (*config.Config, error)
	daemon  Daemon
	log     *zap.Logger
	level   zap.AtomicLevel
	metrics *metrics.Metrics
	notify  func(state string)

	mu  sync.Mutex
	cfg *config.Config
}

// current returns the running configuration.
func (s *supervisor) current() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// reload re-reads and validates the file, then hands it to the daemon. Any
// failure leaves the running configuration in place and is returned.
func (s *supervisor) reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify("RELOADING=1\n" + sd.SdNotifyMonotonicUsec())
	defer s.notify("READY=1")

	cfg, err := s.load(s.path)
	if err == nil {
		err = s.daemon.Reload(ctx, cfg)
	}
	if err != nil {
		s.metrics.ConfigReloads.WithLabelValues("failure").Inc()
		s.log.Error("reload rejected; the running configuration stays", zap.String("path", s.path), zap.Error(err))
		s.notify("STATUS=reload rejected, running the previous configuration")
		return fmt.Errorf("dmvpnd: reload %s: %w", s.path, err)
	}
	if fields := restartOnly(s.cfg, cfg); len(fields) > 0 {
		s.log.Warn("some changes take effect only after a restart", zap.Strings("fields", fields))
	}
	if cfg.Log.Level != s.cfg.Log.Level {
		s.level.SetLevel(zapLevel(cfg.Log.Level))
	}
	s.cfg = cfg
	s.metrics.ConfigReloads.WithLabelValues("success").Inc()
	s.log.Info("configuration reloaded", zap.String("path", s.path))
	s.notify("STATUS=running; configuration reloaded")
	return nil
}

// restartOnly lists the changed settings that dmvpnd itself binds at start.
func restartOnly(old, cur *config.Config) []string {
	var f []string
	if old.Control != cur.Control {
		f = append(f, "control")
	}
	if old.Metrics != cur.Metrics {
		f = append(f, "metrics")
	}
	if old.Log.Format != cur.Log.Format {
		f = append(f, "log.format")
	}
	return f
}

// control is the api.Provider served on the control socket: the daemon's
// views plus a Reload that goes through the supervisor.
type control struct {
	api.Source
	sup *supervisor
}

func (c control) Reload(ctx context.Context) error { return c.sup.reload(ctx) }
