package controller

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

// capture is everything n's controller serves, as the control API would.
func capture(t *testing.T, n *node) apitest.Snapshot {
	t.Helper()
	s := apitest.Capture(context.Background(), n.ctl, func(what string, err error) {
		if err != nil && !errors.Is(err, api.ErrNotEnabled) {
			t.Fatalf("%s: %s: %v", n.name, what, err)
		}
	})
	s.Now = time.Now().UTC()
	s.Status.Version = "v0.0.0-test"
	return s
}

// TestAPISnapshot produces dmvpnctl's fixtures from a real controller: a
// hub and two spokes on the fakes, run to a Phase 3 shortcut from s1 (with
// IPsec) to s2's LAN. The hub's and s1's views are written as JSON with
// -update and compared otherwise, so a change in what the daemon serves
// shows in dmvpnctl's goldens.
func TestAPISnapshot(t *testing.T) {
	testPhase3(t, func(t *testing.T, r phase3Run) {
		for _, c := range []struct {
			role string
			n    *node
		}{{"hub", r.hub}, {"spoke", r.s1}} {
			b, err := json.MarshalIndent(capture(t, c.n), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			path := filepath.Join("api", "apitest", "testdata", c.role+".json")
			if !golden.Check(t, path, b) {
				t.Errorf("%s: the %s serves something else (run go test ./controller -run TestAPISnapshot -update, then go test ./cmd/dmvpnctl -update)", path, c.role)
			}
		}
	})
}
