package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// wallClock is the engine clock inside a synctest bubble (time is virtual
// there, so this is deterministic).
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// fakeRoutes answers route lookups from a static table, as the kernel's
// main table would.
type fakeRoutes struct {
	tunnelIfindex int
	routes        []kernel.RouteMatch
}

func (f *fakeRoutes) LookupRoute(dst netip.Addr) (kernel.RouteMatch, bool, error) {
	var best kernel.RouteMatch
	ok := false
	for _, r := range f.routes {
		if r.Prefix.Contains(dst) && (!ok || r.Prefix.Bits() > best.Prefix.Bits()) {
			best, ok = r, true
		}
	}
	return best, ok, nil
}

// node is one controller under test with its fakes.
type node struct {
	name   string
	cfg    *config.Config
	kernel *kerneltest.Fake
	m      *metrics.Metrics
	routes *fakeRoutes
	ctl    *Controller
	cancel context.CancelFunc
	done   chan error
}

// lanRoutes gives a node a LAN and a summary of the others through the tunnel.
func lanRoutes(lan string, summary string, hubTunnel string) []kernel.RouteMatch {
	rs := []kernel.RouteMatch{{Prefix: netip.MustParsePrefix(lan), Ifindex: 2}}
	if summary != "" {
		rs = append(rs, kernel.RouteMatch{Prefix: netip.MustParsePrefix(summary), Ifindex: -1,
			Gateway: netip.MustParseAddr(hubTunnel)})
	}
	return rs
}

func parseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func hubYAML(nbma, addr string) string {
	return fmt.Sprintf(`
tunnel: {name: gre1, key: 42, local_nbma: %s, address: %s}
nhrp: {role: hub, network_id: 1, holding_time: 600s, redirect: true}
`, nbma, addr)
}

func spokeYAML(nbma, addr string, nhs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tunnel: {name: gre1, key: 42, local_nbma: %s, address: %s}\n", nbma, addr)
	b.WriteString("nhrp:\n  role: spoke\n  network_id: 1\n  holding_time: 600s\n  shortcut: true\n  nhs:\n")
	for i := 0; i+1 < len(nhs); i += 2 {
		fmt.Fprintf(&b, "    - {nbma: %s, protocol: %s, priority: %d}\n", nhs[i], nhs[i+1], i)
	}
	return b.String()
}

// start runs a controller on the in-memory network with an empty fake
// kernel. It must be called inside a synctest bubble. mod may change the
// dependencies (an IPsec fake).
func start(t testing.TB, netw *kerneltest.Network, name, yaml string, routes []kernel.RouteMatch, mod ...func(*Deps)) *node {
	t.Helper()
	return startOn(t, netw, name, yaml, routes, kerneltest.New(), nil, mod...)
}

// startOn is start on a given (pre-populated) fake kernel k; when cut is
// not nil, the node is cut off from the NBMA network while it is set.
func startOn(t testing.TB, netw *kerneltest.Network, name, yaml string, routes []kernel.RouteMatch, k *kerneltest.Fake, cut *atomic.Bool, mod ...func(*Deps)) *node {
	t.Helper()
	cfg := parseConfig(t, yaml)
	n := &node{name: name, cfg: cfg, kernel: k, m: metrics.New("test"), done: make(chan error, 1)}
	n.routes = &fakeRoutes{routes: routes}
	var hair Hairpins
	if cfg.NHRP.Role == config.RoleHub {
		hair = n.kernel
	}
	deps := Deps{
		Dataplane: n.kernel,
		Misses:    n.kernel,
		Lookup:    n.routes,
		Hairpins:  hair,
		Listen: func(ifindex int) (kernel.PacketConn, error) {
			n.routes.tunnelIfindex = ifindex
			for i := range n.routes.routes {
				if n.routes.routes[i].Ifindex == -1 {
					n.routes.routes[i].Ifindex = ifindex
				}
			}
			c, err := netw.Listen(cfg.Tunnel.LocalNBMA)
			if err != nil || cut == nil {
				return c, err
			}
			return gatedConn{PacketConn: c, cut: cut}, nil
		},
		Clock:   wallClock{},
		Metrics: n.m,
	}
	for _, m := range mod {
		m(&deps)
	}
	ctl, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("%s: New: %v", name, err)
	}
	n.ctl = ctl
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- ctl.Run(ctx) }()
	return n
}

// The Phase 3 cloud most tests run: a hub (198.51.100.1, 10.0.0.1) and
// spokes s1 and s2 (198.51.100.2 and .3, 10.0.0.2 and .3) with LANs
// 192.168.1.0/24 and 192.168.2.0/24 and the summary 192.168.0.0/16 via
// the hub.

// hubWithLANs starts the hub of the cloud, routing each spoke's LAN to it.
func hubWithLANs(t testing.TB, netw *kerneltest.Network, extraYAML string, mod ...func(*Deps)) *node {
	t.Helper()
	return start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24")+extraYAML,
		[]kernel.RouteMatch{{Prefix: netip.MustParsePrefix("192.168.1.0/24"), Ifindex: -1, Gateway: netip.MustParseAddr("10.0.0.2")},
			{Prefix: netip.MustParsePrefix("192.168.2.0/24"), Ifindex: -1, Gateway: netip.MustParseAddr("10.0.0.3")}}, mod...)
}

// startSpoke starts spoke s1 or s2 (i) of the cloud, its configuration
// followed by extraYAML.
func startSpoke(t testing.TB, netw *kerneltest.Network, i int, extraYAML string, mod ...func(*Deps)) *node {
	t.Helper()
	nbma, addr := fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("10.0.0.%d/24", i+1)
	return start(t, netw, fmt.Sprintf("s%d", i), spokeYAML(nbma, addr, "198.51.100.1", "10.0.0.1")+extraYAML,
		lanRoutes(fmt.Sprintf("192.168.%d.0/24", i), "192.168.0.0/16", "10.0.0.1"), mod...)
}

// registeredCloud starts the whole cloud and lets the spokes register
// (5 s); the caller stops the three nodes.
func registeredCloud(t testing.TB, netw *kerneltest.Network) (hub, s1, s2 *node) {
	t.Helper()
	hub = hubWithLANs(t, netw, "")
	s1 = startSpoke(t, netw, 1, "")
	s2 = startSpoke(t, netw, 2, "")
	time.Sleep(5 * time.Second)
	synctest.Wait()
	return hub, s1, s2
}

// wantCounted checks that n's show counters has want (counter -> value)
// and that its metric's exposition is exactly exposition: a count is
// visible both ways.
func wantCounted(t testing.TB, n *node, want api.Counters, metric, exposition string) {
	t.Helper()
	got, err := n.ctl.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: show counters %s = %d, want %d", n.name, k, got[k], v)
		}
	}
	if err := testutil.GatherAndCompare(n.m.Registry(), strings.NewReader(exposition), metric); err != nil {
		t.Errorf("%s: %v", n.name, err)
	}
}

// record appends v to the fake's list *items under its lock mu.
func record[T any](mu *sync.Mutex, items *[]T, v T) {
	mu.Lock()
	defer mu.Unlock()
	*items = append(*items, v)
}

// latest returns the last of the fake's list *items (the zero value if it
// is empty) and its length, under the fake's lock mu.
func latest[T any](mu *sync.Mutex, items *[]T) (last T, n int) {
	mu.Lock()
	defer mu.Unlock()
	if n = len(*items); n > 0 {
		last = (*items)[n-1]
	}
	return last, n
}

// wantNotShown checks that show counters on n lists none of names (the
// counters of a subsystem n runs without).
func wantNotShown(t testing.TB, n *node, names ...string) {
	t.Helper()
	got, err := n.ctl.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if v, ok := got[name]; ok {
			t.Errorf("%s: show counters has %s = %d", n.name, name, v)
		}
	}
}

// stop ends the controller and reports its error.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	if err := <-n.done; err != nil {
		t.Errorf("%s: Run: %v", n.name, err)
	}
}

// stopAll stops nodes in order, waiting for each.
func stopAll(t *testing.T, nodes ...*node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.stop(t) }()
	}
	wg.Wait()
}

// has reports whether the node's kernel state has a line containing all parts.
func (n *node) has(parts ...string) bool {
	for _, l := range n.kernel.Lines() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
