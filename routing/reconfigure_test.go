package routing_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
)

// until consumes the node's events until done() holds and returns the
// events seen meanwhile.
func (n *node) until(ctx context.Context, t *testing.T, what string, done func() bool) []routing.NeighborEvent {
	t.Helper()
	var seen []routing.NeighborEvent
	for !done() {
		select {
		case ev := <-n.sp.Events():
			n.states[ev.Neighbor] = ev.State
			seen = append(seen, ev)
		case <-ctx.Done():
			t.Fatalf("%s: %s: states %v: %v", n.name, what, n.states, ctx.Err())
		}
	}
	return seen
}

// drainEvents consumes the events already queued.
func (n *node) drainEvents() []routing.NeighborEvent {
	var seen []routing.NeighborEvent
	for {
		select {
		case ev := <-n.sp.Events():
			n.states[ev.Neighbor] = ev.State
			seen = append(seen, ev)
		default:
			return seen
		}
	}
}

// noFlap fails when an event says neighbor a left Established.
func noFlap(t *testing.T, who string, a netip.Addr, evs []routing.NeighborEvent) {
	t.Helper()
	for _, ev := range evs {
		if ev.Neighbor == a && ev.State != routing.StateEstablished {
			t.Errorf("%s: the unchanged session to %s went %s during the reload", who, a, ev.State)
		}
	}
}

func uptime(ctx context.Context, t *testing.T, n *node, a netip.Addr) time.Duration {
	t.Helper()
	sum, err := n.sp.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sum {
		if s.Neighbor == a && s.State == routing.StateEstablished {
			return s.Uptime
		}
	}
	t.Fatalf("%s: %s not established: %+v", n.name, a, sum)
	return 0
}

// TestIntegrationReconfigureNeighbors: a spoke's reload adds a second hub
// (its session comes up and its routes arrive) without touching the
// session to the first hub, then removes the first hub (its session ends,
// the second stays); a restart-only field is refused and changes nothing.
func TestIntegrationReconfigureNeighbors(t *testing.T) {
	ctx := testCtx(t)
	port1, port2 := freePort(t, hubAddr), freePort(t, hub2Addr)
	h1 := startNode(t, "hub1", hubConfig(routing.HubModeReflect, port1, false))
	h2cfg := hubConfig(routing.HubModeReflect, port2, false)
	h2cfg.RouterID, h2cfg.ListenAddress = hub2Addr, hub2Addr
	h2cfg.Prefixes = []netip.Prefix{pfx("10.200.0.0/16")}
	h2 := startNode(t, "hub2", h2cfg)
	hub1AP, hub2AP := netip.AddrPortFrom(hubAddr, uint16(port1)), netip.AddrPortFrom(hub2Addr, uint16(port2))
	cfg := spokeConfig(0, []netip.AddrPort{hub1AP}, hubAS, hubAS)
	sp := startNode(t, "spoke0", cfg)
	sp.waitEstablished(ctx, t, hubAddr)
	h1.waitEstablished(ctx, t, spokeAddrs[0])
	sp.waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric, "10.100.0.0/16 via "+hubAddr.String()))
	time.Sleep(1100 * time.Millisecond) // uptime counts whole seconds
	before := uptime(ctx, t, sp, hubAddr)

	both := spokeConfig(0, []netip.AddrPort{hub1AP, hub2AP}, hubAS, hubAS)
	if err := sp.sp.Reconfigure(ctx, both); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	evs := sp.until(ctx, t, "second hub established", func() bool { return sp.states[hub2Addr] == routing.StateEstablished })
	sp.waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric,
		"10.100.0.0/16 via "+hubAddr.String(), "10.200.0.0/16 via "+hub2Addr.String()))
	noFlap(t, "spoke0", hubAddr, append(evs, sp.drainEvents()...))
	noFlap(t, "hub1", spokeAddrs[0], h1.drainEvents())
	h2.until(ctx, t, "spoke established on hub2", func() bool { return h2.states[spokeAddrs[0]] == routing.StateEstablished })
	h2.drainEvents()
	if after := uptime(ctx, t, sp, hubAddr); after < before {
		t.Errorf("session to hub1 restarted: uptime %s before the reload, %s after", before, after)
	}

	// A restart-only field is refused as a whole: the neighbors stay.
	bad := both
	bad.ASN = 65099
	var re *routing.RestartError
	if err := sp.sp.Reconfigure(ctx, bad); !errors.As(err, &re) || len(re.Fields) != 1 || re.Fields[0] != "asn" {
		t.Fatalf("Reconfigure with a new ASN: %v, want a RestartError naming asn", err)
	}

	// Removing hub1 ends its session; hub2's stays.
	only2 := spokeConfig(0, []netip.AddrPort{hub2AP}, hubAS, hubAS)
	if err := sp.sp.Reconfigure(ctx, only2); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	sp.waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric, "10.200.0.0/16 via "+hub2Addr.String()))
	h1.until(ctx, t, "spoke gone from hub1", func() bool { return h1.states[spokeAddrs[0]] != routing.StateEstablished })
	noFlap(t, "spoke0", hub2Addr, sp.drainEvents())
	noFlap(t, "hub2", spokeAddrs[0], h2.drainEvents())
	sum, err := sp.sp.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sum {
		if n.Neighbor == hubAddr {
			t.Errorf("removed neighbor still configured: %+v", n)
		}
	}
}

// TestIntegrationReconfigureImport: a hub whose import policy leaves out
// a spoke's LAN installs it after a reload that accepts it, and a reload
// that narrows the policy again removes it; no spoke session restarts.
// The reload also replaces the hub's per-spoke statements, so the spoke's
// next-hop rule keeps holding.
func TestIntegrationReconfigureImport(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	narrow := hubConfig(routing.HubModeReflect, port, false)
	narrow.Import = routing.ImportConfig{Accept: []routing.PrefixRange{{Prefix: pfx("192.168.2.0/24")}}}
	hub := startNode(t, "hub", narrow)
	hubAP := []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}
	for i := range 2 {
		s := startNode(t, "spoke", spokeConfig(i, hubAP, hubAS, hubAS))
		s.waitEstablished(ctx, t, hubAddr)
	}
	hub.waitEstablished(ctx, t, spokeAddrs[0], spokeAddrs[1])
	hub.waitRoutes(ctx, t, expectedHub(1, 2))

	wide := narrow
	wide.Import = testImport
	if err := hub.sp.Reconfigure(ctx, wide); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	hub.waitRoutes(ctx, t, expectedHub(2))
	noFlap(t, "hub", spokeAddrs[0], hub.drainEvents())

	if err := hub.sp.Reconfigure(ctx, narrow); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	evs := hub.drainEvents()
	noFlap(t, "hub", spokeAddrs[0], evs)
	noFlap(t, "hub", spokeAddrs[1], evs)
	// The same configuration again changes nothing in GoBGP.
	if err := hub.sp.Reconfigure(ctx, narrow); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
}

// TestIntegrationReconfigureMaxPrefix: lowering a spoke's max-prefix limit
// below what its hub sends applies to the running session (GoBGP checks the
// new limit at once and tears the session down).
func TestIntegrationReconfigureMaxPrefix(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.Prefixes = []netip.Prefix{hubLAN, pfx("10.101.0.0/16")}
	startNode(t, "hub", hcfg)
	cfg := spokeConfig(0, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS)
	sp := startNode(t, "spoke0", cfg)
	sp.waitEstablished(ctx, t, hubAddr)
	sp.waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric,
		"10.100.0.0/16 via "+hubAddr.String(), "10.101.0.0/16 via "+hubAddr.String()))
	limited := cfg
	limited.MaxPrefixes = 1
	if err := sp.sp.Reconfigure(ctx, limited); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	sp.until(ctx, t, "max-prefix teardown", func() bool { return sp.sp.Stats().MaxPrefixTeardowns > 0 })
}

// TestIntegrationReconfigureDynamicLimits: on a running hub, requiring
// registration closes the session of a spoke that is not registered and
// leaves the registered one alone; a dynamic limit of 1 then refuses the
// closed spoke when it comes back, while the spoke within the limit keeps
// its session.
func TestIntegrationReconfigureDynamicLimits(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hub := startNode(t, "hub", hcfg)
	hubAP := []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}
	for i := range 2 {
		startNode(t, "spoke", spokeConfig(i, hubAP, hubAS, hubAS))
	}
	hub.waitEstablished(ctx, t, spokeAddrs[0], spokeAddrs[1])
	hub.waitRoutes(ctx, t, expectedHub(2))
	hub.sp.SetRegistered([]netip.Addr{spokeAddrs[0]})

	reg := hcfg
	reg.Hub.RequireRegistration = true
	if err := hub.sp.Reconfigure(ctx, reg); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	evs := hub.until(ctx, t, "unregistered spoke closed", func() bool { return hub.states[spokeAddrs[1]] != routing.StateEstablished })
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	noFlap(t, "hub", spokeAddrs[0], evs)
	if n := hub.sp.Stats().NeighborsRefused[routing.RefusedUnregistered]; n == 0 {
		t.Errorf("closing the unregistered spoke was not counted: %v", hub.sp.Stats())
	}

	// Registered now, but over the new limit of 1.
	limited := reg
	limited.Hub.DynamicLimit = 1
	if err := hub.sp.Reconfigure(ctx, limited); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	hub.sp.SetRegistered([]netip.Addr{spokeAddrs[0], spokeAddrs[1]})
	hub.until(ctx, t, "spoke over the limit refused", func() bool { return hub.sp.Stats().NeighborsRefused[routing.RefusedLimit] > 0 })
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	noFlap(t, "hub", spokeAddrs[0], hub.drainEvents())
}

// TestIntegrationReconfigurePassword rotates the TCP MD5 password: the hub
// takes the new one (its spoke sessions close, and the old key no longer
// opens one), the spoke takes it (its session restarts with the new key),
// and a spoke that connects for the first time with the new key is
// accepted: the hub's listener was re-keyed for its dynamic range.
func TestIntegrationReconfigurePassword(t *testing.T) {
	requireTCPMD5(t)
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.Password = "one"
	hub := startNode(t, "hub", hcfg)
	hubAP := []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}
	scfg := spokeConfig(0, hubAP, hubAS, hubAS)
	scfg.Password = "one"
	s0 := startNode(t, "spoke0", scfg)
	hub.waitEstablished(ctx, t, spokeAddrs[0])
	s0.waitEstablished(ctx, t, hubAddr)

	before := tcpExt(t, "TCPMD5Failure")
	hcfg.Password = "two"
	if err := hub.sp.Reconfigure(ctx, hcfg); err != nil {
		t.Fatalf("hub Reconfigure: %v", err)
	}
	// GoBGP reports no state change for a dynamic neighbor it deletes:
	// the spoke's side tells.
	s0.until(ctx, t, "session closed by the hub", func() bool { return s0.states[hubAddr] != routing.StateEstablished })
	for tcpExt(t, "TCPMD5Failure") < before+2 { // the spoke retries with the old key
		select {
		case <-ctx.Done():
			t.Fatal("the old key still opens a session (no TCPMD5Failure)")
		case <-time.After(50 * time.Millisecond):
		}
	}
	scfg.Password = "two"
	if err := s0.sp.Reconfigure(ctx, scfg); err != nil {
		t.Fatalf("spoke Reconfigure: %v", err)
	}
	s0.until(ctx, t, "session with the new key", func() bool { return s0.states[hubAddr] == routing.StateEstablished })

	s1cfg := spokeConfig(1, hubAP, hubAS, hubAS)
	s1cfg.Password = "two"
	startNode(t, "spoke1", s1cfg)
	hub.waitEstablished(ctx, t, spokeAddrs[1])
	hub.waitRoutes(ctx, t, expectedHub(2)) // both spokes' LANs: both sessions up
}

// TestIntegrationReconfigureTimers: new timers for a static neighbor are
// negotiated in the OPEN, so the session restarts to take them.
func TestIntegrationReconfigureTimers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second) // the idle hold time is 30 s
	defer cancel()
	port := freePort(t, hubAddr)
	hub := startNode(t, "hub", hubConfig(routing.HubModeReflect, port, false))
	cfg := spokeConfig(0, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS)
	sp := startNode(t, "spoke0", cfg)
	sp.waitEstablished(ctx, t, hubAddr)
	hub.waitEstablished(ctx, t, spokeAddrs[0])
	hub.drainEvents()
	slower := cfg
	slower.HoldTime, slower.KeepaliveInterval = 12*time.Second, 4*time.Second
	if err := sp.sp.Reconfigure(ctx, slower); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	sp.until(ctx, t, "session reset for the new timers", func() bool { return sp.states[hubAddr] != routing.StateEstablished })
	// GoBGP waits its idle hold time after a reset (30 s) before it
	// connects again.
	sp.until(ctx, t, "session back", func() bool { return sp.states[hubAddr] == routing.StateEstablished })
}
