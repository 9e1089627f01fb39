package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/controller/config"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness is a running dmvpnd with fakes around it.
type harness struct {
	rt     *app
	sigs   chan os.Signal
	notes  notes
	done   chan int
	logs   *lockedBuffer
	socket string
}

// start runs dmvpnd with fakes and waits for READY=1.
func start(t *testing.T, d *fakeDaemon, l *loader, wd time.Duration) *harness {
	t.Helper()
	h := launch(t, d, l, wd)
	h.notes.waitFor(t, "READY=1")
	return h
}

// launch runs dmvpnd on the hub configuration (pushed to l) with daemon d
// and watchdog interval wd, without waiting for anything.
func launch(t *testing.T, d Daemon, l *loader, wd time.Duration) *harness {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(t, hubYAML, dir)
	l.push(cfg, nil)
	sigs := make(chan os.Signal, 1)
	n := make(notes, 256)
	logs := &lockedBuffer{}
	rt := &app{stdout: io.Discard, stderr: logs, load: l.load,
		newDaemon: func(*config.Config, Deps) (Daemon, error) { return d, nil },
		notify:    n.notify, watchdog: func() (time.Duration, error) { return wd, nil },
		signals: sigs, now: func() time.Time { return apitest.Now }}
	done := make(chan int, 1)
	go func() {
		done <- rt.execute(context.Background(), []string{"--config", filepath.Join(dir, "dmvpnd.yaml")})
	}()
	return &harness{rt: rt, sigs: sigs, notes: n, done: done, logs: logs, socket: cfg.Control.Socket}
}

func TestLifecycle(t *testing.T) {
	d := newFakeDaemon()
	l := &loader{}
	h := start(t, d, l, 0)
	rt, sigs, n, done, logs := h.rt, h.sigs, h.notes, h.done, h.logs
	<-d.started

	c := api.NewClient(h.socket)
	st, err := c.Status(context.Background())
	if err != nil || st.Role != "hub" {
		t.Fatalf("control API status = %+v, %v", st, err)
	}

	resp, err := http.Get("http://" + rt.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `dmvpnd_build_info{version="dev"} 1`) {
		t.Errorf("metrics endpoint lacks build info:\n%.300s", body)
	}

	// SIGHUP with an invalid file: rejected, daemon keeps running.
	l.push(nil, errors.New("config: nhrp.role: required (hub or spoke)"))
	sigs <- syscall.SIGHUP
	n.waitFor(t, "STATUS=reload rejected")
	if !strings.Contains(logs.String(), "reload rejected; the running configuration stays") {
		t.Errorf("rejection not logged:\n%s", logs.String())
	}

	// SIGHUP with a valid file reaches the daemon.
	next := testConfig(t, strings.Replace(hubYAML, "192.168.0.0/24", "192.168.1.0/24", 1), t.TempDir())
	l.push(next, nil)
	sigs <- syscall.SIGHUP
	select {
	case got := <-d.reloads:
		if !slices.Equal(got.BGP.Prefixes, next.BGP.Prefixes) {
			t.Error("SIGHUP did not apply the new configuration")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("SIGHUP did not reach the daemon:\n%s", logs.String())
	}

	// dmvpnctl reload goes through the same path; an invalid file is an API error.
	l.push(nil, errors.New("config: bgp.asn: required (1..4294967295)"))
	_, err = c.Reload(context.Background(), api.ReloadRequest{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 422 || !strings.Contains(ae.Message, "config: bgp.asn: required") {
		t.Errorf("API reload of an invalid file = %v", err)
	}

	sigs <- syscall.SIGTERM
	n.waitFor(t, "STOPPING=1")
	if code := <-done; code != exitOK {
		t.Errorf("exit = %d, want 0", code)
	}
	if _, err := os.Stat(h.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Error("secret in logs")
	}
}

func TestWatchdogAndDataplaneFailure(t *testing.T) {
	d := newFakeDaemon()
	d.runErr = errors.New("kernel: netlink socket closed")
	h := start(t, d, &loader{}, 20*time.Millisecond)
	n, done, logs := h.notes, h.done, h.logs
	n.waitFor(t, "WATCHDOG=1")
	n.waitFor(t, "WATCHDOG=1")
	close(d.exitNow)
	n.waitFor(t, "STOPPING=1")
	if code := <-done; code != exitFailure {
		t.Errorf("exit = %d after a dataplane failure, want %d", code, exitFailure)
	}
	if !strings.Contains(logs.String(), "netlink socket closed") {
		t.Errorf("failure not logged:\n%s", logs.String())
	}
}
