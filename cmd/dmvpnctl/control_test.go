package main

import (
	"context"
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
	sock := daemon(t, f)
	if out, _, code := ctl(t, sock, "clear", "nhrp", "cache"); code != 0 || out != "Cleared 4 NHRP cache entries\n" {
		t.Errorf("clear nhrp cache = %q, %d", out, code)
	}
	if out, _, code := ctl(t, sock, "clear", "nhrp", "shortcuts"); code != 0 || out != "Cleared 2 NHRP shortcuts\n" {
		t.Errorf("clear nhrp shortcuts = %q, %d", out, code)
	}
	if f.Calls("ClearCache") != 1 || f.Calls("ClearShortcuts") != 1 {
		t.Errorf("calls: cache %d shortcuts %d", f.Calls("ClearCache"), f.Calls("ClearShortcuts"))
	}
}

type readyAfter struct {
	*apitest.Fake
	n int
}

func (r *readyAfter) Status(ctx context.Context) (api.Status, error) {
	st, err := r.Fake.Status(ctx)
	st.Ready = r.Fake.Calls("Status") >= r.n
	return st, err
}

func TestStatusWait(t *testing.T) {
	snap := apitest.SpokeFixture()
	snap.Status = api.Status{State: "registering", Reason: "no NHS answered yet", Role: "spoke"}
	f := apitest.NewFake(snap)
	sock := daemon(t, &readyAfter{Fake: f, n: 4})
	out, errOut, code := ctl(t, sock, "status", "--wait", "--timeout", "10s")
	if code != 0 || !strings.Contains(out, "Ready    yes") || f.Calls("Status") != 4 {
		t.Errorf("status --wait = %q / %q, exit %d after %d polls", out, errOut, code, f.Calls("Status"))
	}

	never := daemon(t, &readyAfter{Fake: apitest.NewFake(snap), n: 1 << 30})
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
	sock := daemon(t, apitest.NewFake(snap))
	var got apitest.Snapshot
	for _, c := range []struct {
		args []string
		into any
	}{
		{[]string{"show", "dmvpn"}, &got.DMVPN},
		{[]string{"show", "nhrp", "cache"}, &got.Cache},
		{[]string{"show", "nhrp", "nhs"}, &got.NHS},
		{[]string{"show", "nhrp", "shortcuts"}, &got.Shortcuts},
		{[]string{"show", "ipsec"}, &got.SAs},
		{[]string{"show", "bgp", "summary"}, &got.BGP},
		{[]string{"show", "counters"}, &got.Counters},
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
	snap.Shortcuts = []api.Shortcut{}
	if diff := cmp.Diff(snap, got, apitest.CmpOptions()); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
}

func TestNotEnabledAndErrors(t *testing.T) {
	f := apitest.NewFake(apitest.HubFixture())
	sock := daemon(t, f)
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
