package main

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

// TestMonitor streams events until the daemon stops: text and JSON, with
// and without a peer filter, against goldens.
func TestMonitor(t *testing.T) {
	at := apitest.Now
	events := []api.Event{
		{Time: at, Kind: api.EventSAUp, Level: "info", NBMA: netip.MustParseAddr("192.0.2.1"), State: "up"},
		{Time: at.Add(time.Second), Kind: api.EventRegistration, Level: "info", PeerTunnel: netip.MustParseAddr("10.0.0.1"),
			NBMA: netip.MustParseAddr("192.0.2.1"), State: "up", Reason: "registered"},
		{Time: at.Add(2 * time.Second), Kind: api.EventShortcutUp, Level: "info", PeerTunnel: netip.MustParseAddr("10.0.0.12"),
			NBMA: netip.MustParseAddr("172.16.0.12"), Prefix: netip.MustParsePrefix("192.168.12.0/24"), State: "up", Reason: "direct path confirmed"},
		{Time: at.Add(3 * time.Second), Kind: api.EventRefusal, Level: "warn", Reason: "cache_full", Count: 3},
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"monitor", []string{"monitor"}},
		{"monitor_json", []string{"monitor", "--json"}},
		{"monitor_peer", []string{"monitor", "--peer", "172.16.0.12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := apitest.NewFake(apitest.SpokeFixture())
			path := filepath.Join(t.TempDir(), "ctl.sock")
			ln, err := api.Listen(path, "")
			if err != nil {
				t.Fatal(err)
			}
			srv := api.NewServer(f)
			go func() { _ = srv.Serve(ln) }()
			type result struct {
				out, errOut string
				code        int
			}
			done := make(chan result, 1)
			go func() {
				out, errOut, code := ctl(t, path, tc.args...)
				done <- result{out, errOut, code}
			}()
			deadline := time.Now().Add(5 * time.Second)
			for f.Subscribers() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			for _, ev := range events {
				f.Events.Publish(ev)
			}
			// The subscription's buffer (4) holds them all; Shutdown hands
			// them over before it ends the stream.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if want := "dmvpnctl monitor: listening on " + path + "\n"; r.code != 0 || r.errOut != want {
				t.Fatalf("exit %d, stderr %q; want 0, %q", r.code, r.errOut, want)
			}
			golden.File(t, tc.name+".golden", r.out)
		})
	}
	if _, errOut, code := ctl(t, "/nonexistent", "monitor", "--peer", "nope"); code != 1 || errOut == "" {
		t.Errorf("bad --peer: exit %d, %q", code, errOut)
	}
}
