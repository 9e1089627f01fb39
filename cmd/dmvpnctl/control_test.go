package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/google/go-cmp/cmp"
)

func TestClearCommands(t *testing.T) {
	f := apitest.NewFake(apitest.SpokeFixture())
	sock := apitest.Serve(t, f)
	if out, _, code := ctl(t, sock, "clear", "nhrp", "cache"); code != 0 || out != "Cleared 1 NHRP cache entries\n" {
		t.Errorf("clear nhrp cache = %q, %d", out, code)
	}
	if out, _, code := ctl(t, sock, "clear", "nhrp", "shortcuts"); code != 0 || out != "Cleared 1 NHRP shortcuts\n" {
		t.Errorf("clear nhrp shortcuts = %q, %d", out, code)
	}
	if f.Calls("ClearCache") != 1 || f.Calls("ClearShortcuts") != 1 {
		t.Errorf("calls: cache %d shortcuts %d", f.Calls("ClearCache"), f.Calls("ClearShortcuts"))
	}
}

// TestClearPeerCommands: the per-peer clears print what the daemon did and
// fail, with its message, for an address it does not know.
func TestClearPeerCommands(t *testing.T) {
	f := apitest.NewFake(apitest.HubFixture())
	sock := apitest.Serve(t, f)
	reg := registeredAddr(t, apitest.HubFixture())
	if out, errOut, code := ctl(t, sock, "clear", "nhrp", "registration", reg); code != 0 || out != "Cleared 1 NHRP registration(s) of "+reg+"\n" {
		t.Errorf("clear nhrp registration = %q / %q, %d", out, errOut, code)
	}
	if _, errOut, code := ctl(t, sock, "clear", "nhrp", "registration", reg); code != 1 || !strings.Contains(errOut, "no registration from "+reg) {
		t.Errorf("second clear nhrp registration = %q, %d", errOut, code)
	}
	if _, errOut, code := ctl(t, sock, "clear", "dmvpn", "peer", "10.9.9.9"); code != 1 || !strings.Contains(errOut, "no peer 10.9.9.9") {
		t.Errorf("clear dmvpn peer unknown = %q, %d", errOut, code)
	}
	if _, errOut, code := ctl(t, sock, "clear", "dmvpn", "peer", "nope"); code != 1 || !strings.Contains(errOut, "not an IP address") {
		t.Errorf("clear dmvpn peer nope = %q, %d", errOut, code)
	}
	if f.Calls("ClearRegistration") != 2 || f.Calls("ClearPeer") != 1 {
		t.Errorf("calls: registration %d peer %d", f.Calls("ClearRegistration"), f.Calls("ClearPeer"))
	}
}

// registeredAddr is the tunnel address of a registration in the snapshot.
func registeredAddr(t *testing.T, s apitest.Snapshot) string {
	t.Helper()
	for _, e := range s.Cache {
		if e.Type == api.CacheDynamic {
			return e.Tunnel.String()
		}
	}
	t.Fatal("no registration in the fixture")
	return ""
}

func TestStatusWait(t *testing.T) {
	snap := apitest.SpokeFixture()
	snap.Status = api.Status{State: "registering", Reason: "no NHS answered yet", Role: "spoke"}
	f := apitest.NewFake(snap)
	sock := apitest.Serve(t, &apitest.ReadyAfter{Fake: f, N: 4})
	out, errOut, code := ctl(t, sock, "status", "--wait", "--timeout", "10s")
	if code != 0 || !strings.Contains(out, "Ready    yes") || f.Calls("Status") != 4 {
		t.Errorf("status --wait = %q / %q, exit %d after %d polls", out, errOut, code, f.Calls("Status"))
	}

	never := apitest.Serve(t, &apitest.ReadyAfter{Fake: apitest.NewFake(snap), N: 1 << 30})
	_, errOut, code = ctl(t, never, "status", "--wait", "--timeout", "30ms")
	if code != 1 || !strings.Contains(errOut, "not ready after 30ms") || !strings.Contains(errOut, "registering: no NHS answered yet") {
		t.Errorf("status --wait timeout = %q, exit %d", errOut, code)
	}

	_, errOut, code = ctl(t, filepath.Join(t.TempDir(), "none.sock"), "status", "--wait", "--timeout", "20ms")
	if code != 1 || !strings.Contains(errOut, "is dmvpnd running?") {
		t.Errorf("status --wait without daemon = %q, exit %d", errOut, code)
	}
}

// TestJSONRoundTrip checks that --json on every show command prints exactly
// the served model.
func TestJSONRoundTrip(t *testing.T) {
	snap := apitest.HubFixture()
	sock := apitest.Serve(t, apitest.NewFake(snap))
	var got apitest.Snapshot
	for _, c := range []struct {
		args []string
		into any
	}{
		{[]string{"show", "dmvpn"}, &got.DMVPN},
		{[]string{"show", "dmvpn", "detail"}, &got.Peers},
		{[]string{"show", "nhrp", "cache"}, &got.Cache},
		{[]string{"show", "nhrp", "nhs"}, &got.NHS},
		{[]string{"show", "nhrp", "shortcuts"}, &got.Shortcuts},
		{[]string{"show", "ipsec"}, &got.SAs},
		{[]string{"show", "bgp", "summary"}, &got.BGP},
		{[]string{"show", "counters"}, &got.Counters},
		{[]string{"show", "qos"}, &got.QoS},
		{[]string{"status"}, &got.Status},
	} {
		out, errOut, code := ctl(t, sock, append(c.args, "--json")...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, errOut)
		}
		if err := json.Unmarshal([]byte(out), c.into); err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
	}
	got.Now = snap.Now
	if snap.Shortcuts == nil {
		snap.Shortcuts = []api.Shortcut{}
	}
	if snap.SAs == nil { // the hub runs without IPsec; the server sends []
		snap.SAs = []api.SA{}
	}
	if diff := cmp.Diff(snap, got, apitest.CmpOptions()); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
}

func TestNotEnabledAndErrors(t *testing.T) {
	f := apitest.NewFake(apitest.HubFixture())
	sock := apitest.Serve(t, f)
	f.SetErr(api.ErrNotEnabled)
	if _, errOut, code := ctl(t, sock, "show", "bgp", "summary"); code != 1 || errOut != "dmvpnctl: api: not enabled\n" {
		t.Errorf("show bgp summary when disabled = %q, %d", errOut, code)
	}
	if _, errOut, code := ctl(t, sock, "show", "nonsense"); code != 1 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command = %q, %d", errOut, code)
	}
}

func TestNHRPDecodeIsWired(t *testing.T) {
	out, _, code := ctl(t, "/nonexistent", "nhrp", "decode", "--help")
	if code != 0 || !strings.Contains(out, "pcap") {
		t.Errorf("nhrp decode --help = %q, %d", out, code)
	}
}
