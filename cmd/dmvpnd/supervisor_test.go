package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestReloadRejectsInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	old := testConfig(t, hubYAML, dir)
	l := &loader{}
	d := newFakeDaemon()
	n := make(notes, 64)
	sup, m, level := newSupervisor(t, l, d, old, n)

	_, badErr := config.Parse([]byte("tunnel: {address: 10.0.0.1/24}\nnhrp: {role: hub}\n"))
	l.push(nil, badErr)
	err := sup.reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "config: nhrp.network_id: required") {
		t.Fatalf("reload of an invalid file = %v", err)
	}
	if sup.current() != old || len(d.reloads) != 0 {
		t.Errorf("invalid configuration reached the daemon or replaced the running one")
	}

	// The daemon refusing a valid configuration also keeps the old one.
	d.reloadErr = errors.New("controller: tunnel key change needs a restart")
	next := testConfig(t, hubYAML, dir)
	l.push(next, nil)
	if err := sup.reload(context.Background()); err == nil || !strings.Contains(err.Error(), "tunnel key change") {
		t.Fatalf("reload refused by the daemon = %v", err)
	}
	if sup.current() != old {
		t.Error("configuration refused by the daemon replaced the running one")
	}
	d.reloadErr = nil

	next.Log.Level = config.LogDebug
	l.push(next, nil)
	if err := sup.reload(context.Background()); err != nil {
		t.Fatalf("valid reload: %v", err)
	}
	if got := <-d.reloads; got != next || sup.current() != next {
		t.Error("valid configuration not applied")
	}
	if level.Level() != zap.DebugLevel {
		t.Errorf("log level = %s, want debug from the new file", level.Level())
	}
	if f, s := counter(t, m.ConfigReloads.WithLabelValues("failure")), counter(t, m.ConfigReloads.WithLabelValues("success")); f != 2 || s != 1 {
		t.Errorf("config_reloads_total failure=%v success=%v, want 2 and 1", f, s)
	}
	seen := n.waitFor(t, "STATUS=running; configuration reloaded")
	if seen[0] != "RELOADING=1\n"+seen[0][len("RELOADING=1\n"):] || !strings.Contains(seen[0], "MONOTONIC_USEC=") {
		t.Errorf("first notification %q, want RELOADING=1 with MONOTONIC_USEC", seen[0])
	}
}

func TestReloadKeepsRuntimeLogLevel(t *testing.T) {
	dir := t.TempDir()
	old := testConfig(t, hubYAML, dir)
	l := &loader{}
	sup, _, level := newSupervisor(t, l, newFakeDaemon(), old, make(notes, 64))
	level.SetLevel(zap.WarnLevel) // dmvpnctl log-level warn
	l.push(testConfig(t, hubYAML, dir), nil)
	if err := sup.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if level.Level() != zap.WarnLevel {
		t.Errorf("reload without a level change reset the runtime level to %s", level.Level())
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
