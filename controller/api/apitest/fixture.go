package apitest

import (
	_ "embed"
	"encoding/json"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// The fixtures are what a real controller serves: the controller test
// TestAPISnapshot runs a hub and two spokes on the fakes to a Phase 3
// shortcut and writes these files (go test ./controller -run
// TestAPISnapshot -update), so dmvpnctl's goldens render the daemon's own
// output, not a hand-made one.
var (
	//go:embed testdata/hub.json
	hubJSON []byte
	//go:embed testdata/spoke.json
	spokeJSON []byte
)

// Now is the instant the fixtures were captured at (the controller test's
// virtual clock); render them relative to it.
var Now = load(hubJSON).Now

// HubFixture is the hub of the Phase 3 run, with both spokes registered.
func HubFixture() Snapshot { return load(hubJSON) }

// SpokeFixture is the spoke that built the shortcut, with IPsec: its SAs
// with the hub and with the other spoke carry traffic counters.
func SpokeFixture() Snapshot { return load(spokeJSON) }

func load(b []byte) Snapshot {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		panic("apitest: fixture: " + err.Error())
	}
	return s
}

// ReloadFixture is what a running dmvpnd answered to a dry run, a reload
// and show running-config. cmd/dmvpnd's TestReloadFixture writes it from
// the real supervisor and controller (go test ./cmd/dmvpnd -update);
// cmd/dmvpnctl renders it for its goldens (TestReloadFromDaemon), so that
// they show what the daemon produces.
type ReloadFixture struct {
	// Running is the file dmvpnd started with, Next the one reloaded.
	Running string `json:"running"`
	Next    string `json:"next"`
	// The answers, with the test's temporary directory replaced by a
	// fixed path.
	DryRun        api.ReloadResult  `json:"dry_run"`
	Reload        api.ReloadResult  `json:"reload"`
	RunningConfig api.RunningConfig `json:"running_config"`
}
