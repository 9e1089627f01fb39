package ipsec_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const waitFor = 5 * time.Second

// t0 is when a synctest bubble starts (midnight UTC, 2000-01-01), so the
// time every harness starts at.
var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	t     *testing.T
	srv   *vicitest.Server
	m     *ipsec.Manager
	logs  *observer.ObservedLogs
	stop  func()
	ndial atomic.Int64 // connection attempts to the fake charon (in a bubble)
}

const testPSK = "correct horse battery staple 1337"

func pskConfig(local string) ipsec.Config {
	return ipsec.Config{
		LocalNBMA: netip.MustParseAddr(local),
		Auth:      ipsec.Auth{Method: ipsec.AuthPSK, PSK: ipsec.NewSecret(testPSK)},
	}
}

// newHarness starts a fake charon and a Manager inside the synctest
// bubble of t (synctest.Test): the fake charon serves over in-memory pipes
// and the Manager runs on the bubble's fake time, which a test moves with
// advance or after; waits are synctest.Wait. peers, if not nil, are set
// before Run so the first reconcile sees them.
func newHarness(t *testing.T, cfg ipsec.Config, peers []ipsec.Peer) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, peers, nil)
}

// newHarnessWith is newHarness with a hook that prepares the fake charon
// before the Manager first connects.
func newHarnessWith(t *testing.T, cfg ipsec.Config, peers []ipsec.Peer, setup func(*vicitest.Server)) *harness {
	t.Helper()
	srv := vicitest.NewPipeServer()
	t.Cleanup(srv.Close)
	if setup != nil {
		setup(srv)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	h := &harness{t: t, srv: srv, logs: logs}
	cfg.Dial = func(ctx context.Context) (net.Conn, error) {
		h.ndial.Add(1)
		return srv.Dial(ctx)
	}
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
	h.m = m
	h.stop = func() { cancel(); <-done }
	t.Cleanup(h.stop)
	return h
}

// waitCmd waits until a recorded command satisfies pred and returns it.
func (h *harness) waitCmd(what string, pred func(c vicitest.Command) bool) vicitest.Command {
	h.t.Helper()
	var found vicitest.Command
	cond := func(s *vicitest.Server) bool {
		for _, c := range s.Commands() {
			if pred(c) {
				found = c
				return true
			}
		}
		return false
	}
	synctest.Wait()
	if !cond(h.srv) {
		h.t.Fatalf("waiting for %s: %v; commands:\n%s", what, errNotNow, renderCommands(h.srv.Commands()))
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

// errNotNow: in a bubble, the condition a test waits for does not hold once
// every goroutine is durably blocked, so it cannot hold before time moves.
var errNotNow = errors.New("not so once the bubble is idle")

// waitState waits until the bubble is idle and checks that cond holds.
func (h *harness) waitState(what string, cond func(ipsec.State) bool) ipsec.State {
	h.t.Helper()
	synctest.Wait()
	st := h.m.State()
	if !cond(st) {
		h.t.Fatalf("waiting for %s: %v; state: %+v", what, errNotNow, st)
	}
	return st
}

// settle waits for the Manager to publish a snapshot newer than gen.
func (h *harness) settle(gen uint64) ipsec.State {
	h.t.Helper()
	return h.waitState("a new snapshot", func(s ipsec.State) bool { return s.Generation > gen })
}

// waitEvent reads events until one satisfies pred; it fails once the
// bubble is idle with no such event sent.
func (h *harness) waitEvent(what string, pred func(ipsec.Event) bool) ipsec.Event {
	h.t.Helper()
	for {
		select {
		case ev := <-h.m.Events():
			if pred(ev) {
				return ev
			}
			continue
		default:
		}
		synctest.Wait()
		select {
		case ev := <-h.m.Events():
			if pred(ev) {
				return ev
			}
		default:
			h.t.Fatalf("waiting for event %s: %v; state %+v", what, errNotNow, h.m.State())
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
// failed), and advances the fake time by d.
func (h *harness) startCharonAfter(d time.Duration) {
	h.t.Helper()
	synctest.Wait()
	h.srv.ResetCommands()
	if err := h.srv.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.advance(d)
}

// restartCharon stops the fake charon (every loaded object is forgotten)
// and starts it again, forgetting the recorded commands too when reset,
// then advances the fake time by after, past the Manager's reconnect wait.
func (h *harness) restartCharon(after time.Duration, reset bool) {
	h.t.Helper()
	h.srv.Stop()
	if reset {
		h.srv.ResetCommands()
	}
	if err := h.srv.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.advance(after)
}

// advance moves the bubble's fake time on by d and waits until the bubble
// is idle again: the timers due by then have fired and been handled.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	time.Sleep(d)
	synctest.Wait()
}

// dials returns how many connections the Manager opened or tried to open
// to the fake charon (two per successful connection: commands, events).
func (h *harness) dials() int64 { return h.ndial.Load() }

// after checks that happened turns true d from now, not earlier: it moves
// the bubble's fake time to just before d, checks that nothing happened,
// then to d and checks that it did.
func (h *harness) after(d time.Duration, what string, happened func() bool) {
	h.t.Helper()
	h.advance(d - time.Millisecond)
	if happened() {
		h.t.Fatalf("%s: happened before %v", what, d)
	}
	h.advance(time.Millisecond)
	if !happened() {
		h.t.Fatalf("%s: not happened after %v", what, d)
	}
}

// syncRun runs f as the subtest name inside its own synctest bubble
// (t.Run is not allowed inside a bubble, so each subtest gets one).
func syncRun(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
}
