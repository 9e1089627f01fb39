package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// renderEvents renders a node's events with times relative to t0.
func renderEvents(nd *nhrpsim.Node, t0 time.Time) string {
	var b strings.Builder
	for _, ev := range nd.Events {
		fmt.Fprintf(&b, "%8s %s %s\n", ev.Time.Sub(t0), nd.Name, ev)
	}
	return b.String()
}

// TestPhase3EventLog pins the exact event sequence the controller sees in
// a Phase 3 exchange: registration, redirect, shortcut, direct path loss
// and recovery, idle expiry.
func TestPhase3EventLog(t *testing.T) {
	tp := newTopo(t)
	t0 := tp.net.Clock.Now()
	s2 := tp.spoke(2, "198.51.100.2", nil)
	s3 := tp.spoke(3, "198.51.100.3", nil)
	tp.start()
	tp.advance(time.Second)
	tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
	tp.run()
	tp.advance(10 * time.Second)
	cut := true
	tp.net.Drop = func(src, dst netip.Addr, _ []byte) bool {
		return cut && src != addr(hubNBMA) && dst != addr(hubNBMA)
	}
	tp.advance(10 * time.Second)
	cut = false
	tp.advance(holding)
	golden.File(t, "phase3.events", renderEvents(tp.hub, t0)+renderEvents(s2, t0)+renderEvents(s3, t0))
}
