package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/google/go-cmp/cmp"
)

const holding = 600 * time.Second

var (
	hubNBMA  = "192.0.2.1"
	hubProto = "10.255.0.1"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// topo is a hub-and-spoke test network.
type topo struct {
	t   *testing.T
	net *nhrpsim.Network
	hub *nhrpsim.Node
}

func hubConfig() engine.Config {
	return engine.Config{Proto: addr(hubProto), Server: true, HoldingTime: holding}
}

func spokeConfig(i int, nhss ...engine.NHSConfig) engine.Config {
	if len(nhss) == 0 {
		nhss = []engine.NHSConfig{{NBMA: addr(hubNBMA), Proto: addr(hubProto)}}
	}
	return engine.Config{Proto: addr(fmt.Sprintf("10.255.0.%d", i)), NHSs: nhss, HoldingTime: holding}
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	tp := &topo{t: t, net: nhrpsim.New()}
	tp.hub = tp.add("hub", hubNBMA, nil, hubConfig())
	tp.hub.Routes.Add("10.255.0.0/24", true, "")
	return tp
}

func (tp *topo) add(name, nbma string, nat *nhrpsim.NAT, cfg engine.Config) *nhrpsim.Node {
	tp.t.Helper()
	nd, err := tp.net.AddNode(name, nbma, nat, cfg)
	if err != nil {
		tp.t.Fatal(err)
	}
	return nd
}

// spoke adds spoke i (tunnel 10.255.0.i, LAN 10.0.i.0/24) with the usual
// routes, and tells the hub its LAN is behind it.
func (tp *topo) spoke(i int, nbma string, nat *nhrpsim.NAT, mod ...func(*engine.Config)) *nhrpsim.Node {
	tp.t.Helper()
	cfg := spokeConfig(i)
	for _, m := range mod {
		m(&cfg)
	}
	nd := tp.add(fmt.Sprintf("spoke%d", i), nbma, nat, cfg)
	nd.Routes.Add("10.255.0.0/24", true, "")
	nd.Routes.Add("10.0.0.0/8", true, hubProto)
	nd.Routes.Add(fmt.Sprintf("10.0.%d.0/24", i), false, "")
	if tp.hub != nil {
		tp.hub.Routes.Add(fmt.Sprintf("10.0.%d.0/24", i), true, fmt.Sprintf("10.255.0.%d", i))
	}
	return nd
}

func (tp *topo) start() {
	tp.t.Helper()
	if err := tp.net.StartAll(); err != nil {
		tp.t.Fatal(err)
	}
}

func (tp *topo) run() {
	tp.t.Helper()
	if err := tp.net.Run(); err != nil {
		tp.t.Fatal(err)
	}
}

func (tp *topo) advance(d time.Duration) {
	tp.t.Helper()
	if err := tp.net.Advance(d); err != nil {
		tp.t.Fatal(err)
	}
}

// cacheEntry returns nd's cache entry for proto of the given kind.
func cacheEntry(nd *nhrpsim.Node, proto string, kind engine.BindingKind) (engine.CacheEntry, bool) {
	for _, ce := range nd.Engine.Cache() {
		if ce.Proto == addr(proto) && ce.Kind == kind {
			return ce, true
		}
	}
	return engine.CacheEntry{}, false
}

// wantNegative checks that nd caches proto as negative for a reason
// containing reason.
func wantNegative(t *testing.T, nd *nhrpsim.Node, proto, reason string) {
	t.Helper()
	ce, ok := cacheEntry(nd, proto, engine.KindNegative)
	if !ok || !strings.Contains(ce.Reason, reason) {
		t.Errorf("%s: negative entry for %s %+v (found %v), want reason %s", nd.Name, proto, ce, ok, reason)
	}
}

// wantCounter checks nd's engine counter name.
func wantCounter(t *testing.T, nd *nhrpsim.Node, name string, want uint64) {
	t.Helper()
	if got := nd.Engine.Counters()[name]; got != want {
		t.Errorf("%s: counter %s = %d, want %d", nd.Name, name, got, want)
	}
}

func shortcutState(nd *nhrpsim.Node, prefix string) engine.ShortcutState {
	for _, sc := range nd.Engine.Shortcuts() {
		if sc.Prefix == pfx(prefix) {
			return sc.State
		}
	}
	return engine.ShortcutRemoved
}

// history lists, in order, show of each event of kind that nd emitted and
// that match accepts.
func history(nd *nhrpsim.Node, kind engine.EventKind, match func(engine.Event) bool, show func(engine.Event) string) []string {
	var out []string
	for _, ev := range nd.EventsOf(kind) {
		if match(ev) {
			out = append(out, show(ev))
		}
	}
	return out
}

// shortcutHistory lists the states a shortcut went through.
func shortcutHistory(nd *nhrpsim.Node, prefix string) []string {
	return history(nd, engine.EventShortcut, func(ev engine.Event) bool { return ev.Prefix == pfx(prefix) },
		func(ev engine.Event) string { return ev.Shortcut.String() })
}

// bindHistory lists the NBMA addresses nd bound proto to, in order.
func bindHistory(nd *nhrpsim.Node, proto string) []string {
	return history(nd, engine.EventBindingAdded, func(ev engine.Event) bool { return ev.Proto == addr(proto) },
		func(ev engine.Event) string { return ev.NBMA.String() })
}

func nhsStates(nd *nhrpsim.Node) string {
	var parts []string
	for _, s := range nd.Engine.NHSs() {
		parts = append(parts, fmt.Sprintf("%s=%s", s.NBMA, s.State))
	}
	return strings.Join(parts, " ")
}

// ipv4 returns a minimal IPv4 header from src to dst.
func ipv4(src, dst string) []byte {
	b := make([]byte, 84)
	b[0] = 0x45
	b[9] = 1
	s, d := addr(src).As4(), addr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return b
}

// netipCmp compares netip values by ==.
var netipCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}
