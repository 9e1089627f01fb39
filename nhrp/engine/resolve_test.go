package engine_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/google/go-cmp/cmp"
)

func TestSpokeToSpokeResolutionThroughHub(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.spoke(3, "198.51.100.3", nil)
	tp.start()

	// The kernel asks for the link-layer address of spoke 3's tunnel IP.
	s2.Engine.NeighborMiss(addr("10.255.0.3"))
	tp.run()

	ce, ok := cacheEntry(s2, "10.255.0.3", engine.KindResolved)
	if !ok {
		t.Fatalf("spoke2 did not resolve 10.255.0.3; cache %+v", s2.Engine.Cache())
	}
	if ce.NBMA != addr("198.51.100.3") || ce.Path != "up" {
		t.Errorf("resolved entry %+v, want NBMA 198.51.100.3 and path up", ce)
	}
	// The neighbor entry pointed at the hub until the direct path was
	// proven, then at the peer.
	if diff := cmp.Diff([]string{"192.0.2.1", "198.51.100.3"}, bindHistory(s2, "10.255.0.3")); diff != "" {
		t.Errorf("binding history for 10.255.0.3 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"validating", "up"}, shortcutHistory(s2, "10.255.0.3/32")); diff != "" {
		t.Errorf("shortcut history (-want +got):\n%s", diff)
	}
	wantCounter(t, tp.hub, "resolutions_answered", 1)
}

// phase3 builds hub + spokes 2 and 3, registered, with a hairpinned flow
// from spoke 2's LAN to spoke 3's LAN.
func phase3(t *testing.T) (*topo, *nhrpsim.Node, *nhrpsim.Node) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	s3 := tp.spoke(3, "198.51.100.3", nil)
	tp.start()
	tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
	tp.run()
	return tp, s2, s3
}

func TestPhase3RedirectResolutionShortcutIdleExpiry(t *testing.T) {
	tp, s2, s3 := phase3(t)

	if diff := cmp.Diff([]string{"validating", "up"}, shortcutHistory(s2, "10.0.3.0/24")); diff != "" {
		t.Fatalf("spoke2 shortcut 10.0.3.0/24 history (-want +got):\n%s\nshortcuts: %+v", diff, s2.Engine.Shortcuts())
	}
	sc := s2.Engine.Shortcuts()[0]
	if sc.Via != addr("10.255.0.3") || sc.NBMA != addr("198.51.100.3") {
		t.Errorf("shortcut %+v, want via 10.255.0.3 at 198.51.100.3", sc)
	}
	wantCounter(t, tp.hub, "resolutions_forwarded", 1)
	if _, ok := cacheEntry(s3, "10.255.0.2", engine.KindRequester); !ok {
		t.Errorf("egress did not cache the requester: %+v", s3.Engine.Cache())
	}

	// The same flow again within the rate limit: no second indication.
	tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
	tp.run()
	if got := tp.hub.Engine.Counters(); got["traffic_indications_sent"] != 1 || got["drop_indication_rate"] != 1 {
		t.Errorf("indications sent %d, rate-limited %d; want 1 and 1", got["traffic_indications_sent"], got["drop_indication_rate"])
	}

	// Idle: nobody uses the shortcut; it goes after its holding time.
	tp.advance(holding - time.Second)
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutUp {
		t.Fatalf("shortcut %v before its holding time, want up", st)
	}
	tp.advance(2 * time.Second)
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutRemoved {
		t.Fatalf("shortcut %v after its holding time unused, want removed", st)
	}
	evs := s2.EventsOf(engine.EventShortcut)
	if last := evs[len(evs)-1]; last.Shortcut != engine.ShortcutRemoved || !strings.Contains(last.Reason, "idle") {
		t.Errorf("last shortcut event %v, want removed (idle)", last)
	}
	if _, ok := s2.Neigh.Lookup(addr("10.255.0.3")); ok {
		t.Errorf("neighbor entry for the idle peer left behind:\n%s", s2.Neigh)
	}
}

func TestPhase3ShortcutRefreshedWhileUsed(t *testing.T) {
	tp, s2, _ := phase3(t)
	for range 30 { // 30 x 40 s = 1200 s, twice the holding time
		s2.Engine.NeighborMiss(addr("10.255.0.3")) // kernel: entry in use
		tp.advance(40 * time.Second)
	}
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutUp {
		t.Fatalf("used shortcut is %v after 2 holding times, want up", st)
	}
	if diff := cmp.Diff([]string{"validating", "up"}, shortcutHistory(s2, "10.0.3.0/24")); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	// Refreshed every 2/3 of the holding time: at 400, 800 and 1200 s.
	wantCounter(t, s2, "resolutions_sent", 4)
}

func TestPhase3FallbackToHubAndRetry(t *testing.T) {
	tp, s2, _ := phase3(t)
	cut := true
	tp.net.Drop = func(src, dst netip.Addr, _ []byte) bool {
		return cut && (src == addr("198.51.100.2") && dst == addr("198.51.100.3") ||
			src == addr("198.51.100.3") && dst == addr("198.51.100.2"))
	}
	// Keepalive every 5 s, three 1 s probes: down within 8 s.
	tp.advance(8 * time.Second)
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutDown {
		t.Fatalf("shortcut %v 8 s after the direct path broke, want down (hub path)", st)
	}
	if got, _ := s2.Neigh.Lookup(addr("10.255.0.3")); got != addr(hubNBMA) {
		t.Errorf("peer neighbor entry %v while the direct path is down, want the hub", got)
	}
	cut = false
	tp.advance(10 * time.Second) // retry backoff starts at 4 s
	if diff := cmp.Diff([]string{"validating", "up", "down", "validating", "up"}, shortcutHistory(s2, "10.0.3.0/24")); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func TestShortcutNeverShorterThanTunnelRoute(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	s3 := tp.spoke(3, "198.51.100.3", nil)
	s2.Routes.Add("10.0.3.0/25", true, hubProto) // more specific than the egress's route
	s3.Routes.Add("10.0.0.0/16", false, "")      // the egress claims a wide prefix
	tp.start()
	tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
	tp.run()
	var got []string
	for _, sc := range s2.Engine.Shortcuts() {
		got = append(got, sc.Prefix.String())
	}
	if diff := cmp.Diff([]string{"10.0.3.0/25"}, got); diff != "" {
		t.Errorf("shortcut prefixes (-want +got):\n%s", diff)
	}
}

func TestTrafficIndicationIgnoredByTransitSpoke(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.spoke(3, "198.51.100.3", nil)
	tp.start()
	// Source 10.0.9.1 is reached over the tunnel from spoke 2: not ingress.
	tp.hub.Routes.Add("10.0.9.0/24", true, "10.255.0.2")
	tp.hub.Engine.Hairpin(ipv4("10.0.9.1", "10.0.3.7"))
	tp.run()
	wantCounter(t, s2, "drop_not_ingress", 1)
	if len(s2.Engine.Shortcuts()) != 0 {
		t.Errorf("transit spoke built a shortcut: %+v", s2.Engine.Shortcuts())
	}
}

// twoHubs: spoke 2 on hub1, spoke 3 on hub2, hub1 a client of hub2.
func twoHubs(t *testing.T, mod func(*engine.Config)) (*nhrpsim.Network, *nhrpsim.Node, *nhrpsim.Node, *nhrpsim.Node, *nhrpsim.Node) {
	net := nhrpsim.New()
	mk := func(name, nbma string, cfg engine.Config) *nhrpsim.Node {
		nd, err := net.AddNode(name, nbma, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	hub2 := mk("hub2", "192.0.2.2", engine.Config{Proto: addr("10.255.0.254"), Server: true, HoldingTime: holding})
	h1 := hubConfig()
	h1.NHSs = []engine.NHSConfig{{NBMA: addr("192.0.2.2"), Proto: addr("10.255.0.254")}}
	hub1 := mk("hub1", hubNBMA, h1)
	c2 := spokeConfig(2)
	if mod != nil {
		mod(&c2)
	}
	s2 := mk("spoke2", "198.51.100.2", c2)
	s3 := mk("spoke3", "198.51.100.3", spokeConfig(3, engine.NHSConfig{NBMA: addr("192.0.2.2"), Proto: addr("10.255.0.254")}))
	if err := net.StartAll(); err != nil {
		t.Fatal(err)
	}
	return net, hub1, hub2, s2, s3
}

func TestForwardedResolutionThroughTwoNHSs(t *testing.T) {
	net, hub1, hub2, s2, _ := twoHubs(t, nil)
	var reply *nhrp.Packet
	net.Trace = func(_, _ netip.Addr, dst *nhrpsim.Node, b []byte) {
		if p, err := nhrp.Parse(b); err == nil && p.Type == nhrp.TypeResolutionReply && dst == s2 && reply == nil {
			reply = p
		}
	}
	s2.Engine.Resolve(addr("10.255.0.3"))
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	if reply == nil {
		t.Fatal("spoke2 got no resolution reply")
	}
	transit := func(typ nhrp.ExtensionType) []string {
		var out []string
		if e := reply.Extension(typ); e != nil {
			for _, c := range e.CIEs {
				out = append(out, c.ClientProto.String())
			}
		}
		return out
	}
	if diff := cmp.Diff([]string{"10.255.0.1"}, transit(nhrp.ExtensionForwardTransit)); diff != "" {
		t.Errorf("forward transit (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10.255.0.1"}, transit(nhrp.ExtensionReverseTransit)); diff != "" {
		t.Errorf("reverse transit (-want +got):\n%s", diff)
	}
	if reply.HopCount != 63 || reply.CIEs[0].ClientNBMA != addr("198.51.100.3") {
		t.Errorf("reply hop count %d CIE %+v", reply.HopCount, reply.CIEs[0])
	}
	wantCounter(t, hub1, "resolutions_forwarded", 1)
	wantCounter(t, hub2, "resolutions_answered", 1)
	if st := shortcutState(s2, "10.255.0.3/32"); st != engine.ShortcutUp {
		t.Errorf("shortcut to 10.255.0.3 is %v, want up", st)
	}
}

func TestHopCountExhaustion(t *testing.T) {
	net, _, _, s2, _ := twoHubs(t, func(c *engine.Config) { c.HopCount = 1 })
	s2.Engine.Resolve(addr("10.255.0.3"))
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	wantNegative(t, s2, "10.255.0.3", "hop-count-exceeded")
	wantCounter(t, s2, "error_indications_received", 1)
	// The negative entry stops a request storm until it expires.
	s2.Engine.Resolve(addr("10.255.0.3"))
	wantCounter(t, s2, "drop_negative_cached", 1)
}

func TestLoopDetected(t *testing.T) {
	net, hub1, hub2, s2, _ := twoHubs(t, nil)
	// Misconfiguration: hub2 routes 10.9.0.0/16 back to hub1.
	hub2.Routes.Add("10.9.0.0/16", true, "10.255.0.1")
	hub1.Routes.Add("10.9.0.0/16", true, "10.255.0.254")
	s2.Engine.Resolve(addr("10.9.0.1"))
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	wantNegative(t, s2, "10.9.0.1", "loop-detected")
	wantCounter(t, hub1, "drop_loop", 1)
}

func TestResolutionRetransmitsWithSameID(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.start()
	var ids []uint32
	sent := 0
	tp.net.Drop = func(src, _ netip.Addr, b []byte) bool {
		p, err := nhrp.Parse(b)
		if err != nil || p.Type != nhrp.TypeResolutionRequest || src != s2.Addr {
			return false
		}
		ids = append(ids, p.RequestID)
		sent++
		return sent <= 2 // lose the first two copies
	}
	s2.Engine.Resolve(addr("10.255.0.3"))
	tp.run()
	tp.advance(time.Second)     // first retry after 1 s (lost)
	tp.advance(2 * time.Second) // second retry after 2 more (delivered)
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("request ids on the wire %v, want three copies of one id", ids)
	}
	c := s2.Engine.Counters()
	if c["resolution_retransmits"] != 2 || c["resolutions_sent"] != 1 {
		t.Errorf("retransmits %d sent %d, want 2 and 1", c["resolution_retransmits"], c["resolutions_sent"])
	}
	// The NAK for an unknown address is cached as a negative entry.
	if _, ok := cacheEntry(s2, "10.255.0.3", engine.KindNegative); !ok {
		t.Errorf("no negative entry after a NAK: %+v", s2.Engine.Cache())
	}
}

// A hairpinned packet, or the payload of a Traffic Indication from the
// NHS, that is not an IP header nhrp.ParseIPHeader accepts (cut short,
// IHL below 5, version 5) changes nothing and is counted.
func TestMalformedIPHeadersCounted(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.spoke(3, "198.51.100.3", nil)
	tp.start()
	good := ipv4("10.0.2.5", "10.0.3.7")
	bad := [][]byte{good[:19], append([]byte{0x44}, good[1:]...), append([]byte{0x55}, good[1:]...)}
	for _, b := range bad {
		tp.hub.Engine.Hairpin(b)
	}
	tp.run()
	wantCounter(t, tp.hub, "drop_bad_hairpin", uint64(len(bad)))
	wantCounter(t, s2, "traffic_indications_received", 0)
	for _, b := range bad {
		ti, err := nhrp.NewTrafficIndication(addr(hubNBMA), addr(hubProto), addr("10.255.0.2"), b).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		tp.net.Inject(tp.hub, addr("198.51.100.2"), ti)
	}
	tp.run()
	wantCounter(t, s2, "traffic_indications_received", uint64(len(bad)))
	wantCounter(t, s2, "drop_malformed", uint64(len(bad)))
	if len(s2.Engine.Shortcuts()) != 0 {
		t.Errorf("shortcut from a malformed indication: %+v", s2.Engine.Shortcuts())
	}
}
