package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

// TestShowQoS: show qos PEER narrows the hub's view to the peer at a
// tunnel or NBMA address (table and JSON); an unknown peer, an address
// that is none, and a node without QoS support are errors naming why;
// a node with QoS but no shaper says so.
func TestShowQoS(t *testing.T) {
	sock := apitest.Serve(t, apitest.NewFake(apitest.HubFixture()))
	for _, args := range [][]string{{"show", "qos", "10.0.0.2"}, {"show", "qos", "10.0.0.2", "--json"}} {
		name := strings.ReplaceAll(strings.Join(args, "_"), ".", "_")
		name = strings.ReplaceAll(strings.TrimSuffix(name, "_--json"), "-", "") + "_hub"
		if args[len(args)-1] == "--json" {
			name += "_json"
		}
		t.Run(name, func(t *testing.T) {
			out, errOut, code := ctl(t, sock, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden.File(t, name+".golden", out)
		})
	}
	byNBMA, _, code := ctl(t, sock, "show", "qos", "198.51.100.2", "--json")
	var v []api.QoSPeer
	if err := json.Unmarshal([]byte(byNBMA), &v); code != 0 || err != nil || len(v) != 1 || v[0].Tunnel.String() != "10.0.0.2" {
		t.Errorf("show qos 198.51.100.2 --json: exit %d, %v, %+v; want the shaper toward 10.0.0.2", code, err, v)
	}
	if _, errOut, code := ctl(t, sock, "show", "qos", "10.0.0.9"); code != 1 || !strings.Contains(errOut, "no per-tunnel QoS toward 10.0.0.9") {
		t.Errorf("unknown peer: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := ctl(t, sock, "show", "qos", "nope"); code != 1 || !strings.Contains(errOut, "not an IP address") {
		t.Errorf("bad address: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := ctl(t, sock, "show", "qos", "10.0.0.2", "10.0.0.3"); code == 0 || errOut == "" {
		t.Errorf("two peers: exit %d, stderr %q", code, errOut)
	}
	off := apitest.Serve(t, apitest.NewFake(apitest.Snapshot{}))
	if _, errOut, code := ctl(t, off, "show", "qos"); code != 1 || !strings.Contains(errOut, "not enabled") {
		t.Errorf("without QoS support: exit %d, stderr %q", code, errOut)
	}
	none := apitest.Serve(t, apitest.NewFake(apitest.Snapshot{QoS: []api.QoSPeer{}}))
	if out, errOut, code := ctl(t, none, "show", "qos"); code != 0 || out != "No per-tunnel QoS installed\n" {
		t.Errorf("no shaper: exit %d, out %q, stderr %q", code, out, errOut)
	}
}
