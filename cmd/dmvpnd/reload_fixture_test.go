package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

// reloadFixtureDir replaces the test's temporary directory in the
// answers (the control socket lives there).
const reloadFixtureDir = "/run/dmvpnd-test"

const reloadRunning = `tunnel: {name: gre1, key: 42, local_nbma: 192.0.2.1, address: 10.0.0.1/24, mtu: 1400}
nhrp:
  role: hub
  network_id: 1
  holding_time: 600s
  authentication: hunter2
  redirect: true
bgp: {enabled: true, asn: 65000, prefixes: [192.168.1.0/24]}
metrics: {listen: ""}
log: {level: info}
`

// reloadNext changes restart-only keys (tunnel.name, bgp.asn), live keys
// (tunnel.mtu, nhrp.holding_time, nhrp.redirect, a BGP neighbor and the
// import policy's bgp.lan_space, log.level) and secrets
// (nhrp.authentication, bgp.password).
const reloadNext = `tunnel: {name: gre9, key: 42, local_nbma: 192.0.2.1, address: 10.0.0.1/24, mtu: 1380}
nhrp:
  role: hub
  network_id: 1
  holding_time: 300s
  authentication: s3cret
  redirect: false
bgp:
  enabled: true
  asn: 65001
  prefixes: [192.168.1.0/24]
  neighbors: [{address: 10.0.0.2}]
  lan_space: [192.168.0.0/16]
  password: md5-secret
metrics: {listen: ""}
log: {level: debug}
`

// TestReloadFixture runs dmvpnd (the real supervisor and controller over
// the kernel fakes) on reloadRunning and asks it over its control socket
// for a dry run of reloadNext, then reloads that file and reads the
// running configuration. The answers are compared with
// testdata/reload_fixture.json (rewritten with -update), the fixture of
// dmvpnctl's reload and running-config goldens.
func TestReloadFixture(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dmvpnd.yaml")
	if err := os.WriteFile(path, []byte(reloadRunning), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	t.Setenv("DMVPND_CONTROL_SOCKET", sock)
	sigs := make(chan os.Signal, 1)
	n := make(notes, 256)
	logs := &lockedBuffer{}
	rt := &app{stdout: io.Discard, stderr: logs, load: loadConfig, newDaemon: fakeSystem,
		notify: n.notify, watchdog: func() (time.Duration, error) { return 0, nil },
		signals: sigs, now: time.Now}
	done := make(chan int, 1)
	go func() { done <- rt.execute(context.Background(), []string{"--config", path}) }()
	n.waitFor(t, "READY=1")
	defer func() {
		sigs <- syscall.SIGTERM
		if code := <-done; code != exitOK {
			t.Errorf("exit %d after SIGTERM\n%s", code, logs.String())
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := api.NewClient(sock)
	got := apitest.ReloadFixture{Running: reloadRunning, Next: reloadNext}
	var err error
	if got.DryRun, err = c.Reload(ctx, api.ReloadRequest{DryRun: true, Config: reloadNext}); err != nil {
		t.Fatalf("dry run: %v\n%s", err, logs.String())
	}
	if err := os.WriteFile(path, []byte(reloadNext), 0o600); err != nil {
		t.Fatal(err)
	}
	if got.Reload, err = c.Reload(ctx, api.ReloadRequest{}); err != nil {
		t.Fatalf("reload: %v\n%s", err, logs.String())
	}
	if got.RunningConfig, err = c.RunningConfig(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(bytes.ReplaceAll(b, []byte(dir), []byte(reloadFixtureDir)), '\n')
	golden.File(t, "reload_fixture.json", b)
	// The restart-only key keeps its running value.
	if !strings.Contains(got.RunningConfig.YAML, "name: gre1\n") {
		t.Errorf("running configuration after the reload:\n%s", got.RunningConfig.YAML)
	}
}
