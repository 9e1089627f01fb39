package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

func loadReloadFixture(t *testing.T) apitest.ReloadFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "dmvpnd", "testdata", "reload_fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f apitest.ReloadFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Reload.Changes) == 0 || f.Reload.Complete() || f.RunningConfig.YAML == "" {
		t.Fatalf("reload fixture lacks a partial reload or the running configuration: %+v", f)
	}
	return f
}

// TestReloadCommand: every changed key is printed with its result; the
// exit status is 0 when all were applied, 3 when some wait for a restart
// (so that systemctl reload and Ansible fail), 1 when the file is rejected.
func TestReloadCommand(t *testing.T) {
	fx := loadReloadFixture(t)
	f := apitest.NewFake(apitest.HubFixture())
	sock := apitest.Serve(t, f)
	if out, _, code := ctl(t, sock, "reload"); code != 0 || out != "Configuration reloaded: no changes\n" {
		t.Errorf("reload = %q, %d", out, code)
	}

	f.SetReloadResult(fx.Reload)
	out, errOut, code := ctl(t, sock, "reload")
	if code != exitRestartNeeded || errOut != "dmvpnctl: some changes need a restart of dmvpnd (systemctl restart dmvpnd)\n" {
		t.Errorf("partial reload: exit %d, stderr %q", code, errOut)
	}
	golden.File(t, "reload_partial"+".golden", out)
	out, _, code = ctl(t, sock, "reload", "--json")
	if code != exitRestartNeeded {
		t.Errorf("reload --json exit %d", code)
	}
	golden.File(t, "reload_partial_json"+".golden", out)

	var live api.ReloadResult
	for _, c := range fx.Reload.Changes {
		if c.Disposition == api.DispositionLive {
			live.Changes = append(live.Changes, c)
		}
	}
	f.SetReloadResult(live)
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
	fx := loadReloadFixture(t)
	f := apitest.NewFake(apitest.HubFixture())
	sock := apitest.Serve(t, f)
	f.SetReloadResult(fx.DryRun)
	file := filepath.Join(t.TempDir(), "new.yaml")
	if err := os.WriteFile(file, []byte(fx.Next), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code := ctl(t, sock, "reload", "--dry-run", file)
	if code != exitRestartNeeded {
		t.Errorf("dry run exit %d, want %d", code, exitRestartNeeded)
	}
	golden.File(t, "reload_dry_run"+".golden", out)
	if r := f.LastReload(); !r.DryRun || r.Config != fx.Next {
		t.Errorf("request %+v, want a dry run carrying the file", r)
	}
	if _, errOut, code := ctl(t, sock, "reload", file); code != 1 || errOut == "" {
		t.Errorf("reload FILE without --dry-run: exit %d, %q", code, errOut)
	}
}

// TestShowRunningConfig renders the daemon's effective configuration after
// the fixture's partial reload: defaults filled in, secrets redacted, the
// restart-only change listed at the end.
func TestShowRunningConfig(t *testing.T) {
	fx := loadReloadFixture(t)
	f := apitest.NewFake(apitest.HubFixture())
	f.SetRunningConfig(fx.RunningConfig)
	sock := apitest.Serve(t, f)
	out, _, code := ctl(t, sock, "show", "running-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	golden.File(t, "show_running_config"+".golden", out)
	out, _, _ = ctl(t, sock, "show", "running-config", "--json")
	golden.File(t, "show_running_config_json"+".golden", out)
}

// TestShowRunningConfigSecrets: with IPsec and BGP (which the fixture's
// daemon over kernel fakes does not run) the PSK is redacted too.
func TestShowRunningConfigSecrets(t *testing.T) {
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
	f.SetRunningConfig(api.RunningConfig{YAML: string(c.YAML()), Config: c.Tree()})
	sock := apitest.Serve(t, f)
	out, _, code := ctl(t, sock, "show", "running-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	golden.File(t, "show_running_config_secrets"+".golden", out)
	for _, secret := range []string{"topsecret", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("show running-config prints the secret %q:\n%s", secret, out)
		}
	}
}
