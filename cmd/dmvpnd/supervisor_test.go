package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestReloadRejectsInvalidConfig(t *testing.T) {
	r := newSupRig(t)
	sup, m, level, l, d, n, dir, old := r.sup, r.m, r.level, r.l, r.d, r.n, r.dir, r.old

	_, badErr := config.Parse([]byte("tunnel: {address: 10.0.0.1/24}\nnhrp: {role: hub}\n"))
	l.push(nil, badErr)
	_, err := sup.reload(context.Background(), api.ReloadRequest{})
	if err == nil || !strings.Contains(err.Error(), "config: nhrp.network_id: required") {
		t.Fatalf("reload of an invalid file = %v", err)
	}
	if sup.current() != old || len(d.reloads) != 0 {
		t.Errorf("invalid configuration reached the daemon or replaced the running one")
	}

	// The daemon refusing a valid configuration also keeps the old one.
	d.reloadErr = errors.New("controller: tunnel key change needs a restart")
	next := testConfig(t, hubYAML, dir)
	next.Tunnel.Key = 7
	l.push(next, nil)
	if _, err := sup.reload(context.Background(), api.ReloadRequest{}); err == nil || !strings.Contains(err.Error(), "tunnel key change") {
		t.Fatalf("reload refused by the daemon = %v", err)
	}
	if sup.current() != old {
		t.Error("configuration refused by the daemon replaced the running one")
	}
	d.reloadErr = nil

	next.Log.Level = config.LogDebug
	l.push(next, nil)
	res, err := sup.reload(context.Background(), api.ReloadRequest{})
	if err != nil {
		t.Fatalf("valid reload: %v", err)
	}
	want := []api.ConfigChange{
		{Key: "tunnel.key", Old: "0", New: "7", Disposition: "live"},
		{Key: "log.level", Old: "info", New: "debug", Disposition: "live"},
	}
	if diff := cmp.Diff(want, res.Changes); diff != "" || !res.Complete() {
		t.Errorf("reload changes (-want +got):\n%s", diff)
	}
	if got := <-d.reloads; got.Tunnel.Key != 7 || sup.current() != got {
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

// TestReloadAppliesLiveReportsRestart: a file that changes a live key and
// restart-only keys is applied in part: the daemon gets the live change
// with the running values of the restart-only keys, the reply names each
// key with its disposition, the running configuration keeps reporting
// them as pending, and a PSK change shows as "changed" only.
func TestReloadAppliesLiveReportsRestart(t *testing.T) {
	r := newSupRig(t)
	sup, m, l, d, n, dir, old := r.sup, r.m, r.l, r.d, r.n, r.dir, r.old

	next := testConfig(t, strings.NewReplacer("hunter2", "hunter3", "192.168.0.0/24", "192.168.9.0/24").Replace(hubYAML), dir)
	next.Tunnel.Name = "gre9"
	next.Log.Format = config.LogConsole

	dry, err := sup.reload(context.Background(), api.ReloadRequest{DryRun: true, Config: "unused: the loader answers"})
	if err == nil {
		t.Fatalf("dry run with a config the parser refuses = %+v", dry)
	}
	l.push(next, nil)
	dry, err = sup.reload(context.Background(), api.ReloadRequest{DryRun: true})
	if err != nil || !dry.DryRun || len(dry.Changes) != 4 || len(d.reloads) != 0 || sup.current() != old {
		t.Fatalf("dry run = %+v, %v; want 4 changes and nothing applied", dry, err)
	}

	l.push(next, nil)
	res, err := sup.reload(context.Background(), api.ReloadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []api.ConfigChange{
		{Key: "tunnel.name", Old: "gre1", New: "gre9", Disposition: "restart", Reason: "the tunnel interface is created at start"},
		{Key: "nhrp.authentication", Secret: true, Disposition: "live"},
		{Key: "bgp.prefixes", Old: "[192.168.0.0/24]", New: "[192.168.9.0/24]", Disposition: "live"},
		{Key: "log.format", Old: "json", New: "console", Disposition: "restart", Reason: "the logger is built at start"},
	}
	if diff := cmp.Diff(want, res.Changes); diff != "" || res.Complete() {
		t.Errorf("reload changes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, dry.Changes); diff != "" {
		t.Errorf("dry run and reload disagree (-reload +dry run):\n%s", diff)
	}
	got := <-d.reloads
	if got.Tunnel.Name != "gre1" || got.Log.Format != config.LogJSON || got.NHRP.Authentication.Reveal() != "hunter3" || got.BGP.Prefixes[0] != next.BGP.Prefixes[0] {
		t.Errorf("daemon got name %s, format %s, prefixes %v: want the live changes only", got.Tunnel.Name, got.Log.Format, got.BGP.Prefixes)
	}
	rc := sup.runningConfig()
	if len(rc.Pending) != 2 || rc.Pending[0].Key != "tunnel.name" || rc.Pending[1].Key != "log.format" {
		t.Errorf("pending after the reload: %+v", rc.Pending)
	}
	if strings.Contains(rc.YAML, "hunter") || !strings.Contains(rc.YAML, "name: gre1") {
		t.Errorf("running config:\n%s", rc.YAML)
	}
	if p := counter(t, m.ConfigReloads.WithLabelValues("partial")); p != 1 {
		t.Errorf("config_reloads_total{result=partial} = %v, want 1", p)
	}
	n.waitFor(t, "STATUS=running; configuration reloaded, restart needed for tunnel.name, log.format")
}

func TestReloadKeepsRuntimeLogLevel(t *testing.T) {
	r := newSupRig(t)
	sup, level, l, dir := r.sup, r.level, r.l, r.dir
	level.SetLevel(zap.WarnLevel) // dmvpnctl log-level warn
	l.push(testConfig(t, hubYAML, dir), nil)
	if _, err := sup.reload(context.Background(), api.ReloadRequest{}); err != nil {
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
