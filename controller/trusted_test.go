package controller

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// responderOnly is an IPsec side whose SAs were all initiated by peers to
// the responder connection: they appear in State as unattributed and no
// Event is ever sent (the peers are not wanted yet).
type responderOnly struct{ sas []ipsec.SAInfo }

func (r *responderOnly) SetPeers([]ipsec.Peer) error                         { return nil }
func (r *responderOnly) State() ipsec.State                                  { return ipsec.State{Connected: true, Unattributed: r.sas} }
func (r *responderOnly) Events() <-chan ipsec.Event                          { return nil }
func (r *responderOnly) Run(ctx context.Context) error                       { <-ctx.Done(); return nil }
func (r *responderOnly) SetCredentials(ipsec.Auth, []string, []string) error { return nil }

// TestTrustsSAsInitiatedByPeers: a hub with IPsec must accept (and answer)
// NHRP from a spoke whose SA the spoke initiated, although no IPsec event
// announced it; seen in the lab as every registration over an established
// SA being dropped (drop_untrusted) and never answered. A spoke behind NAT
// is proven by the inner address its tunnel-mode SA carries, never by the
// NAT's public address, which the engine takes from the SA as its outer
// address.
func TestTrustsSAsInitiatedByPeers(t *testing.T) {
	ip := &responderOnly{}
	c, _ := engineWith(t, hubYAML("198.51.100.1", "10.0.0.1/24"), Deps{IPsec: ip})
	public, natPublic, natInner := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.102"), netip.MustParseAddr("192.168.2.2")
	proven := func() map[string]bool {
		c.syncProtections() // as for every received packet
		out := map[string]bool{}
		for _, a := range []netip.Addr{public, natPublic, natInner} {
			out[a.String()] = c.eng.Proven(a)
		}
		return out
	}
	if diff := cmp.Diff(map[string]bool{"198.51.100.2": false, "198.51.100.102": false, "192.168.2.2": false}, proven()); diff != "" {
		t.Errorf("before any SA (-want +got):\n%s", diff)
	}

	ip.sas = []ipsec.SAInfo{
		{Conn: "dmvpn-responder", State: "ESTABLISHED", Remote: netip.AddrPortFrom(public, 500), RemoteID: "198.51.100.2",
			Children: []ipsec.ChildInfo{{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT", RemoteTS: []string{"198.51.100.2/32[gre]"}}}},
		{Conn: "dmvpn-responder", State: "ESTABLISHED", Remote: netip.AddrPortFrom(natPublic, 4500), RemoteID: "192.168.2.2", NATRemote: true,
			Children: []ipsec.ChildInfo{{Name: "gre-nat", State: "INSTALLED", Mode: "TUNNEL", RemoteTS: []string{"192.168.2.2/32[gre]"}}}},
	}
	if diff := cmp.Diff(map[string]bool{"198.51.100.2": true, "198.51.100.102": false, "192.168.2.2": true}, proven()); diff != "" {
		t.Errorf("with SAs the peers initiated, no event (-want +got):\n%s", diff)
	}
	want := []engine.Protection{
		{NBMA: natInner, Outer: natPublic, Identity: "192.168.2.2"},
		{NBMA: public, Identity: "198.51.100.2"},
	}
	got := engineProtections(ip.State().Protections(), false)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("protections handed to the engine (-want +got):\n%s", diff)
	}
}

// TestHeldUntilSAEvent: a registration that reaches the hub before the
// IPsec manager has reported the SA it came through (the packet reader
// does not wait for the loop goroutine's IPsec events) is held by the
// engine and answered once the event is processed, not dropped as
// untrusted.
func TestHeldUntilSAEvent(t *testing.T) {
	ip := &responderOnly{}
	c, rc := engineWith(t, hubYAML("198.51.100.1", "10.0.0.1/24"), Deps{IPsec: ip})
	spoke := netip.MustParseAddr("198.51.100.2")
	b, err := nhrp.NewRegistrationRequest(spoke, netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1"), 7, 600, 0, false).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c.handleBatch([]packet{{from: spoke, b: b}})
	if len(rc.sent) != 0 {
		t.Fatalf("answered %v before the SA was reported", rc.sent)
	}
	ip.sas = []ipsec.SAInfo{{Conn: "dmvpn-responder", State: "ESTABLISHED", Remote: netip.AddrPortFrom(spoke, 500), RemoteID: "198.51.100.2",
		Children: []ipsec.ChildInfo{{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT", RemoteTS: []string{"198.51.100.2/32[gre]"}}}}}
	c.onIPsecEvent(ipsec.Event{Peer: "198.51.100.2", Status: ipsec.StatusUp})
	if diff := cmp.Diff([]netip.Addr{spoke}, rc.sent, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("sent after the SA's event (-want +got):\n%s", diff)
	}
	// (This harness has no tunnel interface: the fake kernel refuses the
	// neighbor entry and the reply carries code 5; an answer all the same.)
	got := c.eng.Counters()
	want := map[string]uint64{"rx_held_for_sa": 1, "rx_released_by_sa": 1, "drop_untrusted": 0, "tx_packets": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (counters %v)", k, got[k], v, got)
		}
	}
}

// TestResponderAcceptsNATedInitiators: the IPsec configuration lets peers
// behind NAT initiate tunnel-mode SAs with their private claimed address
// as inner address (the hub refused them with TS_UNACCEPTABLE in the lab).
func TestResponderAcceptsNATedInitiators(t *testing.T) {
	cfg := parseConfig(t, hubYAML("198.51.100.1", "10.0.0.1/24"))
	ic := ipsecConfig(cfg, cfg.Tunnel.LocalNBMA, zap.NewNop())
	for _, a := range []string{"192.168.2.2", "172.16.0.2", "10.20.30.40", "100.64.1.2"} {
		covered := false
		for _, p := range ic.NATInnerPrefixes {
			covered = covered || p.Contains(netip.MustParseAddr(a))
		}
		if !covered {
			t.Errorf("NAT inner prefixes %v do not cover the private address %s", ic.NATInnerPrefixes, a)
		}
	}
	for _, p := range ic.NATInnerPrefixes {
		if p.Contains(netip.MustParseAddr("198.51.100.2")) {
			t.Errorf("NAT inner prefix %v covers a public address", p)
		}
	}
}

// TestBindTunnelAddress: with ipsec.auth.bind_tunnel_address an identity
// is bound to the tunnel address it names; an identity that is no address
// (a certificate subject) is bound to none, so it can register nothing.
func TestBindTunnelAddress(t *testing.T) {
	a := netip.MustParseAddr
	ps := []ipsec.Protection{
		{NBMA: a("198.51.100.2"), Identity: "10.0.0.2"},
		{NBMA: a("198.51.100.3"), Identity: "CN=s3, O=dmvpnd"},
	}
	want := []engine.Protection{
		{NBMA: a("198.51.100.2"), Identity: "10.0.0.2", Bound: []netip.Addr{a("10.0.0.2")}},
		{NBMA: a("198.51.100.3"), Identity: "CN=s3, O=dmvpnd", Bound: []netip.Addr{}},
	}
	got := engineProtections(ps, true)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("bound protections (-want +got):\n%s", diff)
	}
	if got[1].Bound == nil {
		t.Error("an identity that is no address must be bound to nothing (non-nil), not left unbound")
	}
	for _, p := range engineProtections(ps, false) {
		if p.Bound != nil {
			t.Errorf("without binding %s got Bound %v", p.Identity, p.Bound)
		}
	}
}

// responderNotifying is responderOnly as ipsec.Manager behaves: each new
// snapshot moves Generation and is signalled on Changed, still without an
// Event.
type responderNotifying struct {
	mu      sync.Mutex
	sas     []ipsec.SAInfo
	gen     uint64
	changed chan struct{}
	events  chan ipsec.Event // nil: none
}

func (r *responderNotifying) SetPeers([]ipsec.Peer) error { return nil }
func (r *responderNotifying) State() ipsec.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ipsec.State{Connected: true, Generation: r.gen, Unattributed: r.sas}
}
func (r *responderNotifying) Generation() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}
func (r *responderNotifying) Changed() <-chan struct{}                            { return r.changed }
func (r *responderNotifying) Events() <-chan ipsec.Event                          { return r.events }
func (r *responderNotifying) Run(ctx context.Context) error                       { <-ctx.Done(); return nil }
func (r *responderNotifying) SetCredentials(ipsec.Auth, []string, []string) error { return nil }

// startReadyHub starts a hub (198.51.100.1, 10.0.0.1/24) on ip and waits
// until it is ready.
func startReadyHub(t *testing.T, netw *kerneltest.Network, ip *responderNotifying) *node {
	t.Helper()
	hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil, func(d *Deps) { d.IPsec = ip })
	select {
	case <-hub.ctl.Ready():
	case <-time.After(5 * time.Second):
		hub.stop(t)
		t.Fatal("hub not ready")
	}
	return hub
}

// TestHeldReleasedBySnapshot: a registration that came before the
// spoke's SA (one the spoke started, which no event reports) is answered
// when the IPsec side signals the new snapshot, not dropped when the hold
// expires (2 s) on a hub where no other packet comes.
func TestHeldReleasedBySnapshot(t *testing.T) {
	netw := kerneltest.NewNetwork()
	ip := &responderNotifying{changed: make(chan struct{}, 1)}
	hub := startReadyHub(t, netw, ip)
	defer hub.stop(t)
	counter := func(name string) uint64 {
		cs, err := hub.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return cs[name]
	}
	spoke := netip.MustParseAddr("198.51.100.2")
	conn, err := netw.Listen(spoke)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	replies := make(chan []byte, 4)
	go func() {
		buf := make([]byte, 9000)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			replies <- append([]byte(nil), buf[:n]...)
		}
	}()
	b, err := nhrp.NewRegistrationRequest(spoke, netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1"), 7, 600, 0, false).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo(b, netip.MustParseAddr("198.51.100.1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for counter("nhrp_rx_held_for_sa") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the registration was not held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ip.mu.Lock()
	ip.sas = []ipsec.SAInfo{{Conn: "dmvpn-responder", State: "ESTABLISHED", Remote: netip.AddrPortFrom(spoke, 500), RemoteID: "198.51.100.2",
		Children: []ipsec.ChildInfo{{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT", RemoteTS: []string{"198.51.100.2/32[gre]"}}}}}
	ip.gen++
	ip.mu.Unlock()
	ip.changed <- struct{}{}
	select {
	case r := <-replies:
		var p nhrp.Packet
		if err := p.Unmarshal(r); err != nil || p.Type != nhrp.TypeRegistrationReply {
			t.Fatalf("got %v (%v), want a Registration Reply", p.Type, err)
		}
	case <-time.After(time.Second): // the hold lasts 2 s
		t.Fatal("no reply within 1 s of the snapshot: the held registration waited for another packet or its expiry")
	}
	if got := counter("nhrp_rx_released_by_sa"); got != 1 {
		t.Errorf("rx_released_by_sa = %d, want 1", got)
	}
}

// TestSnapshotEventsReportedFirst: acting on a new IPsec snapshot reports
// the events the IPsec side queued with it first, so an SA is reported up
// before the registration or shortcut it lets through. In the lab a
// spoke's monitor once showed a shortcut up 20 ms before the SA that
// carried its resolution reply: the loop took the snapshot's signal
// before the event queued beside it. The fake publishes as
// ipsec.Manager does (snapshot and event visible together), inside the
// loop, so that only syncProtections can have reported the event.
func TestSnapshotEventsReportedFirst(t *testing.T) {
	netw := kerneltest.NewNetwork()
	ip := &responderNotifying{changed: make(chan struct{}, 1), events: make(chan ipsec.Event, 4)}
	hub := startReadyHub(t, netw, ip)
	defer hub.stop(t)
	sub := hub.ctl.Subscribe()
	defer sub.Close()
	spoke := netip.MustParseAddr("198.51.100.2")
	var got []api.Event
	err := hub.ctl.run(context.Background(), func() {
		ip.mu.Lock()
		ip.sas = []ipsec.SAInfo{{Conn: "dmvpn-peer-198.51.100.2", State: "ESTABLISHED", Remote: netip.AddrPortFrom(spoke, 500), RemoteID: "198.51.100.2",
			Children: []ipsec.ChildInfo{{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT", RemoteTS: []string{"198.51.100.2/32[gre]"}}}}}
		ip.gen++
		ip.events <- ipsec.Event{Peer: spoke.String(), Status: ipsec.StatusUp, Time: time.Now()}
		ip.mu.Unlock()
		hub.ctl.syncProtections()
		for {
			select {
			case ev := <-sub.C():
				got = append(got, ev)
				continue
			default:
			}
			return
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(e api.Event) bool { return e.Kind == api.EventSAUp && e.NBMA == spoke }) {
		t.Fatalf("events reported while the snapshot was taken: %v; want sa-up for %s", got, spoke)
	}
}
