package routing_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/google/go-cmp/cmp"
)

func TestSpeakerLifecycle(t *testing.T) {
	ctx := testCtx(t)
	cfg := hubConfig(routing.HubModeReflect, freePort(t, hubAddr), false)
	sock := filepath.Join(t.TempDir(), "api.sock")
	cfg.API = "unix://" + sock
	sp, err := routing.NewSpeaker(cfg, routing.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.SetPrefixes(ctx, nil); !errors.Is(err, routing.ErrNotRunning) {
		t.Errorf("SetPrefixes before Start: %v, want ErrNotRunning", err)
	}
	if _, err := sp.Summary(ctx); !errors.Is(err, routing.ErrNotRunning) {
		t.Errorf("Summary before Start: %v, want ErrNotRunning", err)
	}
	if err := sp.Stop(ctx); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	for round := range 2 { // a stopped speaker can be started again
		if err := sp.Start(ctx); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		if err := sp.Start(ctx); err == nil {
			t.Errorf("round %d: second Start succeeded", round)
		}
		if diff := cmp.Diff([]netip.Prefix{hubLAN}, sp.Originated(), cmpPrefix); diff != "" {
			t.Errorf("round %d: originated (-want +got):\n%s", round, diff)
		}
		if err := sp.SetPrefixes(ctx, []netip.Prefix{pfx("10.1.2.3/16")}); err == nil {
			t.Errorf("round %d: SetPrefixes accepted host bits", round)
		}
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("round %d: API socket: %v", round, err)
		}
		if err := sp.Stop(ctx); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		if err := sp.Stop(ctx); err != nil {
			t.Errorf("round %d: second Stop: %v", round, err)
		}
		if _, err := net.Dial("unix", sock); err == nil {
			t.Errorf("round %d: API still answers after Stop", round)
		}
	}
	if err := sp.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
}

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestSpeakerStartFailsCleanly(t *testing.T) {
	ctx := testCtx(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := hubConfig(routing.HubModeReflect, freePort(t, hubAddr), false)
	cfg.API = busy.Addr().String()
	sp, err := routing.NewSpeaker(cfg, routing.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(ctx); err == nil {
		t.Fatal("Start with the API port in use succeeded")
	}
	// The BGP port is also taken: StartBgp fails and everything is undone,
	// so the speaker can start once the port is free.
	cfg.API = ""
	bgpBusy, err := net.Listen("tcp", netip.AddrPortFrom(hubAddr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ListenPort = bgpBusy.Addr().(*net.TCPAddr).Port
	sp, err = routing.NewSpeaker(cfg, routing.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(ctx); err == nil {
		t.Fatal("Start with the BGP port in use succeeded")
	}
	bgpBusy.Close()
	if err := sp.Start(ctx); err != nil {
		t.Fatalf("Start after freeing the port: %v", err)
	}
	if err := sp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewSpeakerRejectsInvalidConfig(t *testing.T) {
	var ce *routing.ConfigError
	if _, err := routing.NewSpeaker(routing.Config{}); !errors.As(err, &ce) {
		t.Errorf("NewSpeaker(empty) = %v, want a ConfigError", err)
	}
}
