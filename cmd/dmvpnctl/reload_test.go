package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/controller/config"
)

var partialReload = api.ReloadResult{Changes: []api.ConfigChange{
	{Key: "tunnel.name", Old: "gre1", New: "gre9", Disposition: api.DispositionRestart, Reason: "the tunnel interface is created at start"},
	{Key: "nhrp.holding_time", Old: "600s", New: "300s", Disposition: api.DispositionLive},
	{Key: "nhrp.nhs[1].nbma", New: "198.51.100.2", Disposition: api.DispositionLive},
	{Key: "ipsec.auth.psk", Secret: true, Disposition: api.DispositionLive},
}}

// TestReloadCommand: every changed key is printed with its result; the
// exit status is 0 when all were applied, 3 when some wait for a restart
// (so that systemctl reload and Ansible fail), 1 when the file is rejected.
func TestReloadCommand(t *testing.T) {
	f := apitest.NewFake(apitest.HubFixture())
	sock := daemon(t, f)
	if out, _, code := ctl(t, sock, "reload"); code != 0 || out != "Configuration reloaded: no changes\n" {
		t.Errorf("reload = %q, %d", out, code)
	}

	f.SetReloadResult(partialReload)
	out, errOut, code := ctl(t, sock, "reload")
	if code != exitRestartNeeded || errOut != "dmvpnctl: some changes need a restart of dmvpnd (systemctl restart dmvpnd)\n" {
		t.Errorf("partial reload: exit %d, stderr %q", code, errOut)
	}
	golden(t, "reload_partial", out)
	out, _, code = ctl(t, sock, "reload", "--json")
	if code != exitRestartNeeded {
		t.Errorf("reload --json exit %d", code)
	}
	golden(t, "reload_partial_json", out)

	f.SetReloadResult(api.ReloadResult{Changes: partialReload.Changes[1:]})
	if out, _, code := ctl(t, sock, "reload", "--wait"); code != 0 {
		t.Errorf("reload --wait of live changes on a ready node: exit %d\n%s", code, out)
	}

	f.SetReloadErr(errors.New("config: bgp.asn: required (1..4294967295)"))
	_, errOut, code = ctl(t, sock, "reload")
	want := "dmvpnctl: reload rejected, the running configuration stays: api: config: bgp.asn: required (1..4294967295)\n"
	if code != 1 || errOut != want {
		t.Errorf("reload with bad config = %q, %d; want %q", errOut, code, want)
	}
}

// TestReloadDryRun: --dry-run FILE sends the file for the daemon to
// compare, prints the same list, and applies nothing.
func TestReloadDryRun(t *testing.T) {
	f := apitest.NewFake(apitest.HubFixture())
	sock := daemon(t, f)
	f.SetReloadResult(partialReload)
	file := filepath.Join(t.TempDir(), "new.yaml")
	if err := os.WriteFile(file, []byte("tunnel: {name: gre9}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code := ctl(t, sock, "reload", "--dry-run", file)
	if code != exitRestartNeeded {
		t.Errorf("dry run exit %d, want %d", code, exitRestartNeeded)
	}
	golden(t, "reload_dry_run", out)
	if r := f.LastReload(); !r.DryRun || r.Config != "tunnel: {name: gre9}\n" {
		t.Errorf("request %+v, want a dry run carrying the file", r)
	}
	if _, errOut, code := ctl(t, sock, "reload", file); code != 1 || errOut == "" {
		t.Errorf("reload FILE without --dry-run: exit %d, %q", code, errOut)
	}
}

// TestShowRunningConfig renders the daemon's effective configuration.
func TestShowRunningConfig(t *testing.T) {
	c, err := config.Parse([]byte(`
tunnel: {key: 42, local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 600s, authentication: hunter2, redirect: true}
ipsec: {enabled: true, auth: {method: psk, psk: topsecret}}
bgp: {enabled: true, asn: 65000, prefixes: [192.168.0.0/24]}
control: {group: dmvpn}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := apitest.NewFake(apitest.HubFixture())
	f.SetRunningConfig(api.RunningConfig{YAML: string(c.YAML()), Config: c.Tree(), Pending: partialReload.Changes[:1]})
	sock := daemon(t, f)
	out, _, code := ctl(t, sock, "show", "running-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	golden(t, "show_running_config", out)
	out, _, _ = ctl(t, sock, "show", "running-config", "--json")
	golden(t, "show_running_config_json", out)
}
