package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

// supervisor owns the running configuration and applies reloads (SIGHUP or
// dmvpnctl reload), one at a time.
//
// A reload is all or nothing per key, never per file: config.Diff lists
// every changed key; the keys a reload can apply are applied together
// (config.Effective), the restart-only keys keep their running value and
// are reported, each with its reason, in the reply and the log. An invalid
// file, or live changes the daemon fails to apply, change nothing.
type supervisor struct {
	path    string
	load    func(path string) (*config.Config, error)
	parse   func(data []byte) (*config.Config, error)
	daemon  Daemon
	log     *zap.Logger
	level   zap.AtomicLevel
	metrics *metrics.Metrics
	notify  func(state string)

	mu  sync.Mutex
	cfg *config.Config
	// file is the last file loaded; it differs from cfg in the keys that
	// wait for a restart.
	file *config.Config
}

// current returns the running configuration.
func (s *supervisor) current() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// reload re-reads and validates the file, then hands what a reload can
// apply to the daemon. With req.DryRun it only lists the changes, of
// req.Config when set. Any failure leaves the running configuration in
// place and is returned.
func (s *supervisor) reload(ctx context.Context, req api.ReloadRequest) (api.ReloadResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.DryRun {
		next, err := s.read(req)
		if err != nil {
			return api.ReloadResult{}, fmt.Errorf("dmvpnd: dry run: %w", err)
		}
		if _, err := config.Effective(s.cfg, next); err != nil {
			return api.ReloadResult{}, fmt.Errorf("dmvpnd: dry run: %w", err)
		}
		return api.ReloadResult{DryRun: true, Changes: apiChanges(config.Diff(s.cfg, next))}, nil
	}
	s.notify("RELOADING=1\n" + sd.SdNotifyMonotonicUsec())
	defer s.notify("READY=1")

	var changes []config.Change
	next, err := s.read(req)
	var eff *config.Config
	if err == nil {
		changes = config.Diff(s.cfg, next)
		eff, err = config.Effective(s.cfg, next)
	}
	if err == nil {
		err = s.daemon.Reload(ctx, eff)
	}
	if err != nil {
		s.metrics.ConfigReloads.WithLabelValues("failure").Inc()
		s.log.Error("reload rejected; the running configuration stays", zap.String("path", s.path), zap.Error(err))
		s.notify("STATUS=reload rejected, running the previous configuration")
		return api.ReloadResult{}, fmt.Errorf("dmvpnd: reload %s: %w", s.path, err)
	}
	if eff.Log.Level != s.cfg.Log.Level {
		s.level.SetLevel(zapLevel(eff.Log.Level))
	}
	s.cfg, s.file = eff, next
	var pending []string
	for _, c := range changes {
		if c.Disposition == config.Restart {
			pending = append(pending, c.Key)
			s.log.Warn("change waits for a restart", zap.String("key", c.Key), zap.String("change", c.Values()), zap.String("reason", c.Reason))
			continue
		}
		s.log.Info("configuration change applied", zap.String("key", c.Key), zap.Stringer("change", c))
	}
	if len(pending) > 0 {
		s.metrics.ConfigReloads.WithLabelValues("partial").Inc()
		s.log.Warn("configuration reloaded in part: restart dmvpnd to apply the rest", zap.String("path", s.path), zap.Strings("keys", pending))
		s.notify("STATUS=running; configuration reloaded, restart needed for " + strings.Join(pending, ", "))
	} else {
		s.metrics.ConfigReloads.WithLabelValues("success").Inc()
		s.log.Info("configuration reloaded", zap.String("path", s.path), zap.Int("changes", len(changes)))
		s.notify("STATUS=running; configuration reloaded")
	}
	return api.ReloadResult{Changes: apiChanges(changes)}, nil
}

// read loads the daemon's file, or parses req.Config.
func (s *supervisor) read(req api.ReloadRequest) (*config.Config, error) {
	if req.Config != "" {
		return s.parse([]byte(req.Config))
	}
	return s.load(s.path)
}

// runningConfig renders the configuration in effect and what waits for a
// restart.
func (s *supervisor) runningConfig() api.RunningConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	rc := api.RunningConfig{YAML: string(s.cfg.YAML()), Config: s.cfg.Tree()}
	if s.file != nil {
		rc.Pending = apiChanges(config.Diff(s.cfg, s.file))
	}
	return rc
}

func apiChanges(cs []config.Change) []api.ConfigChange {
	out := make([]api.ConfigChange, 0, len(cs))
	for _, c := range cs {
		out = append(out, api.ConfigChange{Key: c.Key, Old: c.Old, New: c.New, Secret: c.Secret,
			Disposition: string(c.Disposition), Reason: c.Reason})
	}
	return out
}

// control is the api.Provider served on the control socket: the daemon's
// views plus Reload and RunningConfig, which go through the supervisor.
type control struct {
	api.Source
	sup *supervisor
}

func (c control) Reload(ctx context.Context, req api.ReloadRequest) (api.ReloadResult, error) {
	return c.sup.reload(ctx, req)
}

func (c control) RunningConfig(context.Context) (api.RunningConfig, error) {
	return c.sup.runningConfig(), nil
}
