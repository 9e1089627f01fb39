package routing_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/dmvpnd/dmvpnd/routing/routingtest"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// The in-process topology: one hub and three spokes, all on lo (every
// 127.0.0.0/8 address is local on Linux). The hub's dynamic range contains
// its own address, as a DMVPN tunnel prefix does (osrg/gobgp#2167 territory).
var (
	hubAddr    = addr("127.0.1.1")
	hub2Addr   = addr("127.0.1.254")
	spokeAddrs = []netip.Addr{addr("127.0.1.2"), addr("127.0.1.3"), addr("127.0.1.4")}
	tunnelPfx  = pfx("127.0.1.0/24")
	hubLAN     = pfx("10.100.0.0/16")
	summary    = pfx("192.168.0.0/16")
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func spokeLAN(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i + 2), 0}), 24)
}

const (
	hubAS   = 65000
	spokeAS = 65011 // eBGP spokes: 65011, 65012, 65013
)

// testImport accepts the test's LAN space (the hub LAN, the summary, the
// spoke LANs and the marker) up to /24, as the daemon's default does.
var testImport = routing.ImportConfig{Accept: []routing.PrefixRange{
	{Prefix: pfx("10.0.0.0/8"), LE: 24},
	{Prefix: pfx("192.168.0.0/16"), LE: 24},
}}

func testTimers(c *routing.Config) {
	c.HoldTime = 9 * time.Second
	c.KeepaliveInterval = 3 * time.Second
	c.ConnectRetry = time.Second
}

// freePort returns a TCP port that was free on a.
func freePort(t *testing.T, a netip.Addr) int {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type node struct {
	name string
	cfg  routing.Config
	sp   *routing.Speaker
	sink *routingtest.Sink
	// established tracks neighbor states from the event stream.
	states map[netip.Addr]routing.NeighborState
}

func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// skipGoBGPRaces skips tests that run several GoBGP servers under the race
// detector: GoBGP v3.37.0 itself races there (StartBgp writes the package
// globals table.SelectionOptions/UseMultiplePaths that other servers read;
// a dynamic eBGP peer going down resets peerInfo.AS while WatchEvent reads
// it). DMVPND_GOBGP_RACE=1 runs them anyway.
func skipGoBGPRaces(t *testing.T) {
	t.Helper()
	if raceEnabled && os.Getenv("DMVPND_GOBGP_RACE") != "1" {
		t.Skip("GoBGP v3.37.0 has data races of its own with several servers per process; set DMVPND_GOBGP_RACE=1 to run")
	}
}

func startNode(t *testing.T, name string, cfg routing.Config, opts ...routing.Option) *node {
	t.Helper()
	skipGoBGPRaces(t)
	n := &node{name: name, cfg: cfg, sink: routingtest.NewSink(), states: map[netip.Addr]routing.NeighborState{}}
	opts = append([]routing.Option{
		routing.WithLogger(testLogger(t).Named(name)),
		routing.WithRouteSink(n.sink),
	}, opts...)
	sp, err := routing.NewSpeaker(cfg, opts...)
	if err != nil {
		t.Fatalf("%s: NewSpeaker: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := sp.Start(ctx); err != nil {
		t.Fatalf("%s: Start: %v", name, err)
	}
	t.Cleanup(func() {
		if err := sp.Stop(context.Background()); err != nil {
			t.Errorf("%s: Stop: %v", name, err)
		}
	})
	n.sp = sp
	return n
}

// waitEstablished consumes the node's events until every neighbor in want
// is established.
func (n *node) waitEstablished(ctx context.Context, t *testing.T, want ...netip.Addr) {
	t.Helper()
	for {
		done := true
		for _, a := range want {
			if n.states[a] != routing.StateEstablished {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case ev := <-n.sp.Events():
			n.states[ev.Neighbor] = ev.State
		case <-ctx.Done():
			t.Fatalf("%s: neighbors %v not established, states %v: %v", n.name, want, n.states, ctx.Err())
		}
	}
}

// waitState consumes events until neighbor a's state satisfies ok.
func (n *node) waitState(ctx context.Context, t *testing.T, a netip.Addr, ok func(routing.NeighborState) bool) {
	t.Helper()
	for !ok(n.states[a]) {
		select {
		case ev := <-n.sp.Events():
			n.states[ev.Neighbor] = ev.State
		case <-ctx.Done():
			t.Fatalf("%s: neighbor %s stays %s: %v", n.name, a, n.states[a], ctx.Err())
		}
	}
}

func (n *node) waitRoutes(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	if err := n.sink.WaitText(ctx, want); err != nil {
		t.Fatalf("%s: %v\nwant:\n%s", n.name, err, want)
	}
}

func routesText(metric int, rs ...string) string {
	var lines []routing.Route
	for _, r := range rs {
		p, via, _ := strings.Cut(r, " via ")
		lines = append(lines, routing.Route{Prefix: pfx(p), Via: addr(via), Metric: metric})
	}
	return routingtest.Render(lines)
}

func hubConfig(mode routing.HubMode, port int, ebgp bool) routing.Config {
	c := routing.Config{
		ASN: hubAS, RouterID: hubAddr, ListenAddress: hubAddr, ListenPort: port,
		Role:     routing.RoleHub,
		Prefixes: []netip.Prefix{hubLAN},
		Tunnel:   tunnelPfx,
		Import:   testImport,
		Hub: routing.HubConfig{
			DynamicRange: tunnelPfx,
			EBGPSpokes:   ebgp,
			Mode:         mode,
		},
	}
	if mode == routing.HubModeSummary {
		c.Hub.Summaries = []netip.Prefix{summary}
	}
	testTimers(&c)
	return c
}

func spokeConfig(i int, hubs []netip.AddrPort, peerAS, ownAS uint32) routing.Config {
	c := routing.Config{
		ASN: ownAS, RouterID: spokeAddrs[i], ListenPort: -1,
		Role:     routing.RoleSpoke,
		Prefixes: []netip.Prefix{spokeLAN(i)},
		Tunnel:   tunnelPfx,
		Import:   testImport,
	}
	for _, h := range hubs {
		c.Spoke.Hubs = append(c.Spoke.Hubs, routing.Neighbor{
			Address: h.Addr(), Port: h.Port(), PeerAS: peerAS, LocalAddress: spokeAddrs[i],
		})
	}
	testTimers(&c)
	return c
}

type topo struct {
	hub    *node
	spokes []*node
}

func startTopo(t *testing.T, ctx context.Context, mode routing.HubMode, ebgp bool) topo {
	t.Helper()
	port := freePort(t, hubAddr)
	tp := topo{hub: startNode(t, "hub", hubConfig(mode, port, ebgp))}
	for i := range spokeAddrs {
		ownAS := uint32(hubAS)
		if ebgp {
			ownAS = spokeAS + uint32(i)
		}
		cfg := spokeConfig(i, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, ownAS)
		tp.spokes = append(tp.spokes, startNode(t, fmt.Sprintf("spoke%d", i), cfg))
	}
	tp.hub.waitEstablished(ctx, t, spokeAddrs...)
	for _, s := range tp.spokes {
		s.waitEstablished(ctx, t, hubAddr)
	}
	return tp
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// expectedReflect is what spoke i installs in reflect mode: every other
// spoke's LAN via that spoke's own tunnel address, and the hub's LAN.
func expectedReflect(i int, skip ...int) string {
	rs := []string{hubLAN.String() + " via " + hubAddr.String()}
	for j := range spokeAddrs {
		if j == i || slices.Contains(skip, j) {
			continue
		}
		rs = append(rs, spokeLAN(j).String()+" via "+spokeAddrs[j].String())
	}
	return routesText(routing.DefaultRouteMetric, rs...)
}

func expectedHub(skip ...int) string {
	var rs []string
	for j := range spokeAddrs {
		if !slices.Contains(skip, j) {
			rs = append(rs, spokeLAN(j).String()+" via "+spokeAddrs[j].String())
		}
	}
	return routesText(routing.DefaultRouteMetric, rs...)
}

func TestIntegrationReflect(t *testing.T) {
	for _, ebgp := range []bool{false, true} {
		t.Run(map[bool]string{false: "ibgp", true: "ebgp"}[ebgp], func(t *testing.T) {
			ctx := testCtx(t)
			tp := startTopo(t, ctx, routing.HubModeReflect, ebgp)
			for i, s := range tp.spokes {
				s.waitRoutes(ctx, t, expectedReflect(i))
			}
			tp.hub.waitRoutes(ctx, t, expectedHub())

			// Withdrawing spoke 1's LAN removes it everywhere.
			if err := tp.spokes[1].sp.SetPrefixes(ctx, nil); err != nil {
				t.Fatalf("SetPrefixes: %v", err)
			}
			tp.spokes[0].waitRoutes(ctx, t, expectedReflect(0, 1))
			tp.spokes[2].waitRoutes(ctx, t, expectedReflect(2, 1))
			tp.hub.waitRoutes(ctx, t, expectedHub(1))
			// SetPrefixes is idempotent, and re-adding brings it back.
			for range 2 {
				if err := tp.spokes[1].sp.SetPrefixes(ctx, []netip.Prefix{spokeLAN(1)}); err != nil {
					t.Fatalf("SetPrefixes: %v", err)
				}
			}
			if diff := cmp.Diff([]netip.Prefix{spokeLAN(1)}, tp.spokes[1].sp.Originated(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("Originated (-want +got):\n%s", diff)
			}
			tp.spokes[0].waitRoutes(ctx, t, expectedReflect(0))
			tp.spokes[2].waitRoutes(ctx, t, expectedReflect(2))

			checkSummary(ctx, t, tp, ebgp)

			// Losing a spoke's session withdraws its routes everywhere and
			// shows up as a state event on the hub.
			if err := tp.spokes[2].sp.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			tp.hub.waitState(ctx, t, spokeAddrs[2], func(s routing.NeighborState) bool { return s != routing.StateEstablished })
			tp.hub.waitRoutes(ctx, t, expectedHub(2))
			tp.spokes[0].waitRoutes(ctx, t, expectedReflect(0, 2))
		})
	}
}

func checkSummary(ctx context.Context, t *testing.T, tp topo, ebgp bool) {
	t.Helper()
	sum, err := tp.hub.sp.Summary(ctx)
	if err != nil {
		t.Fatalf("Summary: %v", err)
	}
	var got []string
	for _, n := range sum {
		got = append(got, fmt.Sprintf("%s as=%d id=%s %s group=%s rcvd=%d", n.Neighbor, n.AS, n.RouterID, n.State, n.PeerGroup, n.PrefixesReceived))
		if n.Uptime < 0 || n.Uptime > time.Minute {
			t.Errorf("%s uptime %s", n.Neighbor, n.Uptime)
		}
	}
	var want []string
	for i, a := range spokeAddrs {
		as := uint32(hubAS)
		if ebgp {
			as = spokeAS + uint32(i)
		}
		want = append(want, fmt.Sprintf("%s as=%d id=%s established group=%s rcvd=1", a, as, a, routing.DefaultPeerGroup))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hub summary (-want +got):\n%s", diff)
	}
}

func TestIntegrationSummary(t *testing.T) {
	for _, ebgp := range []bool{false, true} {
		t.Run(map[bool]string{false: "ibgp", true: "ebgp"}[ebgp], func(t *testing.T) { testSummary(t, ebgp) })
	}
}

func testSummary(t *testing.T, ebgp bool) {
	ctx := testCtx(t)
	tp := startTopo(t, ctx, routing.HubModeSummary, ebgp)
	tp.hub.waitRoutes(ctx, t, expectedHub())
	want := routesText(routing.DefaultRouteMetric, hubLAN.String()+" via "+hubAddr.String(), summary.String()+" via "+hubAddr.String())
	for _, s := range tp.spokes {
		s.waitRoutes(ctx, t, want)
	}
	// Barrier: the hub already has every spoke route. It now originates a
	// marker; once a spoke has the marker, it has processed everything the
	// hub sent before it (one ordered TCP stream), so the RIB check below
	// cannot pass merely because spoke routes are still in flight.
	marker := pfx("10.255.0.0/16")
	if err := tp.hub.sp.SetPrefixes(ctx, []netip.Prefix{hubLAN, summary, marker}); err != nil {
		t.Fatalf("SetPrefixes: %v", err)
	}
	withMarker := routesText(routing.DefaultRouteMetric, hubLAN.String()+" via "+hubAddr.String(),
		marker.String()+" via "+hubAddr.String(), summary.String()+" via "+hubAddr.String())
	for i, s := range tp.spokes {
		s.waitRoutes(ctx, t, withMarker)
		rib, err := s.sp.RIB(ctx)
		if err != nil {
			t.Fatalf("RIB: %v", err)
		}
		var got []string
		for _, e := range rib {
			from := "local"
			if e.From.IsValid() {
				from = e.From.String()
			}
			got = append(got, fmt.Sprintf("%s via %s from %s", e.Prefix, e.NextHop, from))
		}
		want := []string{
			fmt.Sprintf("%s via %s from %s", hubLAN, hubAddr, hubAddr),
			fmt.Sprintf("%s via %s from %s", marker, hubAddr, hubAddr),
			fmt.Sprintf("%s via %s from %s", summary, hubAddr, hubAddr),
			fmt.Sprintf("%s via 0.0.0.0 from local", spokeLAN(i)),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("spoke%d RIB (-want +got):\n%s", i, diff)
		}
	}
	// A withdrawn spoke LAN leaves the hub's FIB; spokes keep the summary.
	if err := tp.spokes[2].sp.SetPrefixes(ctx, nil); err != nil {
		t.Fatalf("SetPrefixes: %v", err)
	}
	tp.hub.waitRoutes(ctx, t, expectedHub(2))
	tp.spokes[0].waitRoutes(ctx, t, withMarker)
}

// TestIntegrationTwoHubs: spokes peer with two hubs (both in the dynamic
// range of the other hub, which also peers with it statically); a spoke's
// routes survive the loss of one hub.
func TestIntegrationTwoHubs(t *testing.T) {
	ctx := testCtx(t)
	p1, p2 := freePort(t, hubAddr), freePort(t, hub2Addr)
	h1cfg := hubConfig(routing.HubModeReflect, p1, false)
	h2cfg := hubConfig(routing.HubModeReflect, p2, false)
	h2cfg.RouterID, h2cfg.ListenAddress = hub2Addr, hub2Addr
	h2cfg.Prefixes = nil
	// The hubs also peer with each other (static, not route-reflector
	// clients), although each is inside the other's dynamic range.
	h1cfg.Hub.Peers = []routing.Neighbor{{Address: hub2Addr, Port: uint16(p2), LocalAddress: hubAddr}}
	h2cfg.Hub.Peers = []routing.Neighbor{{Address: hubAddr, Port: uint16(p1), LocalAddress: hub2Addr}}
	h1 := startNode(t, "hub1", h1cfg)
	h2 := startNode(t, "hub2", h2cfg)
	hubs := []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(p1)), netip.AddrPortFrom(hub2Addr, uint16(p2))}
	var spokes []*node
	for i := range 2 {
		spokes = append(spokes, startNode(t, fmt.Sprintf("spoke%d", i), spokeConfig(i, hubs, hubAS, hubAS)))
	}
	h1.waitEstablished(ctx, t, spokeAddrs[0], spokeAddrs[1], hub2Addr)
	h2.waitEstablished(ctx, t, spokeAddrs[0], spokeAddrs[1], hubAddr)
	// hub2 originates nothing: hub1's LAN reaches it over the hub-hub session.
	h2.waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric, hubLAN.String()+" via "+hubAddr.String(),
		spokeLAN(0).String()+" via "+spokeAddrs[0].String(), spokeLAN(1).String()+" via "+spokeAddrs[1].String()))
	want0 := routesText(routing.DefaultRouteMetric, hubLAN.String()+" via "+hubAddr.String(), spokeLAN(1).String()+" via "+spokeAddrs[1].String())
	spokes[0].waitRoutes(ctx, t, want0)
	// hub1 goes away: spoke0 keeps spoke1's LAN through hub2 and loses hub1's LAN.
	if err := h1.sp.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	spokes[0].waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric, spokeLAN(1).String()+" via "+spokeAddrs[1].String()))

	// While hub1 is down spoke1 withdraws its LAN. After hub1's restart its
	// FIB must not keep the route from its previous run.
	if err := spokes[1].sp.SetPrefixes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	spokes[0].waitRoutes(ctx, t, "")
	clear(h1.states)
	if err := h1.sp.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	h1.waitEstablished(ctx, t, spokeAddrs[:2]...)
	h1.waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric, spokeLAN(0).String()+" via "+spokeAddrs[0].String()))
	spokes[1].waitRoutes(ctx, t, routesText(routing.DefaultRouteMetric, hubLAN.String()+" via "+hubAddr.String(), spokeLAN(0).String()+" via "+spokeAddrs[0].String()))
}

// TestIntegrationHubIdleCPU guards against osrg/gobgp#2167 (a busy loop when
// the dynamic range contains the server's own address): once converged, the
// whole process (hub and spokes) must stay nearly idle.
func TestIntegrationHubIdleCPU(t *testing.T) {
	ctx := testCtx(t)
	tp := startTopo(t, ctx, routing.HubModeReflect, false)
	tp.spokes[0].waitRoutes(ctx, t, expectedReflect(0))
	before := cpuTime(t)
	start := time.Now()
	<-time.After(2 * time.Second) // a measurement window, not a wait for state
	used := cpuTime(t) - before
	wall := time.Since(start)
	t.Logf("CPU %s over %s wall", used, wall)
	if used > wall/4 {
		t.Errorf("process used %s CPU in %s while idle: busy loop?", used, wall)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
