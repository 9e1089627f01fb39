package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// fakeSystem builds the real controller over the kernel fakes.
func fakeSystem(cfg *config.Config, deps Deps) (Daemon, error) {
	k := kerneltest.New()
	netw := kerneltest.NewNetwork()
	return controller.New(cfg, controller.Deps{
		Dataplane: k, Misses: k, Hairpins: k,
		Listen: func(int) (kernel.PacketConn, error) { return netw.Listen(cfg.Tunnel.LocalNBMA) },
		Clock:  wallClock{}, Log: deps.Log, Metrics: deps.Metrics,
	})
}

// TestCleanSIGTERMExitsZero runs dmvpnd with the real controller over the
// kernel fakes and stops it with SIGTERM 100 times: every exit is 0.
func TestCleanSIGTERMExitsZero(t *testing.T) {
	const yaml = `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, redirect: true}
`
	for i := range 100 {
		dir := t.TempDir()
		cfg := testConfig(t, yaml, dir)
		l := &loader{}
		l.push(cfg, nil)
		sigs := make(chan os.Signal, 1)
		n := make(notes, 256)
		logs := &lockedBuffer{}
		rt := &app{stdout: io.Discard, stderr: logs, load: l.load, newDaemon: fakeSystem,
			notify: n.notify, watchdog: func() (time.Duration, error) { return 0, nil },
			signals: sigs, now: time.Now}
		done := make(chan int, 1)
		go func() {
			done <- rt.execute(context.Background(), []string{"--config", filepath.Join(dir, "dmvpnd.yaml")})
		}()
		n.waitFor(t, "READY=1")
		sigs <- syscall.SIGTERM
		if code := <-done; code != exitOK {
			t.Fatalf("run %d: exit = %d after SIGTERM, want 0\n%s", i, code, logs.String())
		}
	}
}
