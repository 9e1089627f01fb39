package ipsec_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const waitFor = 5 * time.Second

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type harness struct {
	t     *testing.T
	srv   *vicitest.Server
	clock *ipsectest.Clock
	m     *ipsec.Manager
	logs  *observer.ObservedLogs
	stop  func()
}

const testPSK = "correct horse battery staple 1337"

func pskConfig(local string) ipsec.Config {
	return ipsec.Config{
		LocalNBMA: netip.MustParseAddr(local),
		Auth:      ipsec.Auth{Method: ipsec.AuthPSK, PSK: ipsec.NewSecret(testPSK)},
	}
}

// shortDir returns a directory whose path fits a unix socket name.
func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "vici")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newHarness starts a fake charon and a Manager on a fake clock. peers, if
// not nil, are set before Run so the first reconcile sees them.
func newHarness(t *testing.T, cfg ipsec.Config, peers []ipsec.Peer) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, peers, nil)
}

// newHarnessWith is newHarness with a hook that prepares the fake charon
// before the Manager first connects.
func newHarnessWith(t *testing.T, cfg ipsec.Config, peers []ipsec.Peer, setup func(*vicitest.Server)) *harness {
	t.Helper()
	srv, err := vicitest.NewServer(filepath.Join(shortDir(t), "charon.vici"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if setup != nil {
		setup(srv)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	clock := ipsectest.NewClock(t0)
	cfg.SocketPath = srv.Path()
	cfg.Clock = clock
	cfg.Logger = zap.New(core)
	m, err := ipsec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if peers != nil {
		if err := m.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	h := &harness{t: t, srv: srv, clock: clock, m: m, logs: logs, stop: func() { cancel(); <-done }}
	t.Cleanup(h.stop)
	return h
}

// waitCmd waits until a recorded command satisfies pred and returns it.
func (h *harness) waitCmd(what string, pred func(c vicitest.Command) bool) vicitest.Command {
	h.t.Helper()
	var found vicitest.Command
	err := h.srv.Wait(waitFor, func(s *vicitest.Server) bool {
		for _, c := range s.Commands() {
			if pred(c) {
				found = c
				return true
			}
		}
		return false
	})
	if err != nil {
		h.t.Fatalf("waiting for %s: %v; commands:\n%s", what, err, renderCommands(h.srv.Commands()))
	}
	return found
}

func (h *harness) count(pred func(c vicitest.Command) bool) int {
	n := 0
	for _, c := range h.srv.Commands() {
		if pred(c) {
			n++
		}
	}
	return n
}

// waitState polls State until cond holds.
func (h *harness) waitState(what string, cond func(ipsec.State) bool) ipsec.State {
	h.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st := h.m.State()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s; state: %+v", what, st)
		}
		time.Sleep(time.Millisecond) // polling with a deadline, not waiting for state by sleeping
	}
}

// settle waits for the Manager to publish a snapshot newer than gen.
func (h *harness) settle(gen uint64) ipsec.State {
	h.t.Helper()
	return h.waitState("a new snapshot", func(s ipsec.State) bool { return s.Generation > gen })
}

// waitEvent reads events until one satisfies pred.
func (h *harness) waitEvent(what string, pred func(ipsec.Event) bool) ipsec.Event {
	h.t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case ev := <-h.m.Events():
			if pred(ev) {
				return ev
			}
		case <-timeout:
			h.t.Fatalf("waiting for event %s; state %+v", what, h.m.State())
		}
	}
}

func isCmd(name string, kv ...string) func(vicitest.Command) bool {
	return func(c vicitest.Command) bool {
		if c.Name != name {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if c.Message.String(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

func renderCommands(cmds []vicitest.Command) string {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString("=> " + c.Name + "\n")
		for _, l := range strings.Split(strings.TrimSuffix(c.Message.Text(), "\n"), "\n") {
			if l != "" {
				b.WriteString("   " + l + "\n")
			}
		}
	}
	return b.String()
}

// waitReconciled waits for the snapshot published after the hub (sorted
// last in these tests) was initiated, i.e. the end of that reconcile pass.
func (h *harness) waitReconciled() {
	h.t.Helper()
	h.waitState("reconcile done", func(s ipsec.State) bool {
		for _, p := range s.Peers {
			if p.Name == "hub" && p.Attempts == 1 {
				return true
			}
		}
		return false
	})
}

// firstBackoff is the default first reconnect delay.
func (h *harness) firstBackoff() time.Duration { return 200 * time.Millisecond }

// startCharonAfter starts the stopped fake charon, its recorded commands
// forgotten, once the Manager waits d to reconnect (its attempts so far
// failed), and advances the clock by d.
func (h *harness) startCharonAfter(d time.Duration) {
	h.t.Helper()
	if err := h.clock.WaitForWaiter(d, waitFor); err != nil {
		h.t.Fatal(err)
	}
	h.srv.ResetCommands()
	if err := h.srv.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.clock.Advance(d)
}

// restartCharon stops the fake charon (every loaded object is forgotten)
// and starts it again, forgetting the recorded commands too when reset,
// then advances the clock by after, past the Manager's reconnect wait.
func (h *harness) restartCharon(after time.Duration, reset bool) {
	h.t.Helper()
	h.srv.Stop()
	if reset {
		h.srv.ResetCommands()
	}
	if err := h.srv.Start(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.clock.WaitForWaiter(after, waitFor); err != nil {
		h.t.Fatal(err)
	}
	h.clock.Advance(after)
}
