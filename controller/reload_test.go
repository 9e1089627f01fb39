package controller

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

// TestReloadNHRPKeepsKernelState: a reload that changes NHRP settings (here
// the holding time) restarts the engine over the kernel state: the
// shortcut route and the neighbor entries are neither deleted nor
// re-pointed, the spoke registers again with the new holding time, and
// the shortcut is re-learnt. A role change is refused.
func TestReloadNHRPKeepsKernelState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"),
			[]kernel.RouteMatch{{Prefix: netip.MustParsePrefix("192.168.1.0/24"), Ifindex: -1, Gateway: netip.MustParseAddr("10.0.0.2")},
				{Prefix: netip.MustParsePrefix("192.168.2.0/24"), Ifindex: -1, Gateway: netip.MustParseAddr("10.0.0.3")}})
		s1YAML := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")
		s1 := start(t, netw, "s1", s1YAML, lanRoutes("192.168.1.0/24", "192.168.0.0/16", "10.0.0.1"))
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"),
			lanRoutes("192.168.2.0/24", "192.168.0.0/16", "10.0.0.1"))
		defer stopAll(t, s1, s2, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")})
		deadline := time.Now().Add(30 * time.Second)
		for !s1.has("route 192.168.2.0/24", "via 10.0.0.3") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") {
			t.Fatalf("s1: no shortcut before the reload:\n%s", s1.kernel.Render())
		}

		ctx := context.Background()
		base := len(s1.kernel.Ops())
		next := parseConfig(t, strings.Replace(s1YAML, "holding_time: 600s", "holding_time: 300s", 1))
		if err := s1.ctl.Reload(ctx, next); err != nil {
			t.Fatalf("Reload with a new holding time: %v", err)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, op := range s1.kernel.Ops()[base:] {
			if strings.HasPrefix(op, "delete") || strings.Contains(op, "lladdr 198.51.100.1 REACHABLE") {
				t.Errorf("s1: kernel operation %q during the reload: traffic would be disturbed", op)
			}
		}
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") || !s1.has("neigh 10.0.0.3", "198.51.100.3") {
			t.Errorf("s1: shortcut state lost in the reload:\n%s", s1.kernel.Render())
		}
		nhs, err := s1.ctl.NHS(ctx)
		if err != nil || len(nhs) != 1 {
			t.Fatalf("s1 NHS after reload: %+v, %v", nhs, err)
		}
		if left := time.Until(nhs[0].Expires); nhs[0].State != "responding" || left <= 0 || left > 300*time.Second {
			t.Errorf("s1 NHS after reload: state %s, registration expires in %v; want responding within the new 300 s", nhs[0].State, left)
		}
		scs, err := s1.ctl.Shortcuts(ctx)
		if err != nil || len(scs) != 1 {
			t.Errorf("s1 shortcuts after reload: %+v, %v; want the shortcut re-learnt", scs, err)
		}

		role := *next
		role.NHRP.Role = config.RoleHub
		if err := s1.ctl.Reload(ctx, &role); err == nil || !strings.Contains(err.Error(), "nhrp.role") {
			t.Errorf("Reload changing the role: %v, want a refusal naming nhrp.role", err)
		}
	})
}

// TestReloadRedirectLive: nhrp.redirect is applied by a reload: turning it
// off removes the hub's hairpin trigger (hairpins no longer reach the
// engine), turning it on installs it again; neither restarts the engine
// (the hub's registrations stay).
func TestReloadRedirectLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		y := hubYAML("198.51.100.1", "10.0.0.1/24")
		hub := start(t, netw, "hub", y, nil)
		defer stopAll(t, hub)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		off := parseConfig(t, strings.Replace(y, "redirect: true", "redirect: false", 1))
		if err := hub.ctl.Reload(ctx, off); err != nil {
			t.Fatalf("Reload redirect off: %v", err)
		}
		if n := hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")}); n != 0 {
			t.Errorf("hairpin delivered to %d watchers with redirect off: the trigger is still installed", n)
		}
		if err := hub.ctl.Reload(ctx, parseConfig(t, y)); err != nil {
			t.Fatalf("Reload redirect on: %v", err)
		}
		ops := strings.Join(hub.kernel.Ops(), "\n")
		if !strings.Contains(ops, "remove hairpin") || strings.Count(ops, "install hairpin") != 2 {
			t.Errorf("kernel operations:\n%s\nwant the trigger installed, removed and installed again", ops)
		}
	})
}

// TestReloadTunnelInPlace: a new tunnel key and MTU are applied to the
// existing tunnel (same ifindex, nothing else touched). When the kernel
// refuses the change the reload fails and the running configuration stays,
// so the next reload tries the change again.
func TestReloadTunnelInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		y := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")
		s1 := start(t, netw, "s1", y, nil)
		defer stopAll(t, s1)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		if err := s1.ctl.Reload(ctx, parseConfig(t, y)); err != nil {
			t.Fatalf("Reload without change: %v", err)
		}
		base := len(s1.kernel.Ops())
		next := parseConfig(t, strings.Replace(y, "key: 42,", "key: 43, mtu: 1300,", 1))
		if err := s1.ctl.Reload(ctx, next); err != nil {
			t.Fatalf("Reload key and MTU: %v", err)
		}
		if !s1.has("tunnel gre1", "key 43", "mtu 1300") {
			t.Errorf("tunnel not adjusted:\n%s", s1.kernel.Render())
		}
		if d := cmp.Diff([]string{"modify tunnel gre1"}, s1.kernel.Ops()[base:]); d != "" {
			t.Errorf("kernel operations of a tunnel key reload (-want +got):\n%s", d)
		}

		s1.kernel.FailNext("EnsureTunnel", errInjected)
		again := parseConfig(t, strings.Replace(y, "key: 42,", "key: 44, mtu: 1300,", 1))
		if err := s1.ctl.Reload(ctx, again); !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "controller: reload: ") {
			t.Errorf("Reload refused by the kernel = %v; want the kernel's error", err)
		}
		if !s1.has("tunnel gre1", "key 43") {
			t.Errorf("tunnel changed by a refused reload:\n%s", s1.kernel.Render())
		}
		if err := s1.ctl.Reload(ctx, again); err != nil || !s1.has("tunnel gre1", "key 44") {
			t.Errorf("Reload after the refusal = %v; want the change applied:\n%s", err, s1.kernel.Render())
		}

		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := s1.ctl.Reload(cancelled, next); !errors.Is(err, context.Canceled) {
			t.Errorf("Reload with an ended context = %v; want context.Canceled", err)
		}
	})
}

// TestReloadHostAddress: tunnel.host_address is live: a reload swaps the
// tunnel's address layout in place (the tunnel address as a /32, the tunnel
// prefix as dmvpnd's route) and back, touching nothing else; a node started
// with it comes up in that layout.
func TestReloadHostAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		y := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")
		host := strings.Replace(y, "key: 42,", "key: 42, host_address: true,", 1)
		s1 := start(t, netw, "s1", y, nil)
		s2 := start(t, netw, "s2", strings.NewReplacer("198.51.100.2", "198.51.100.3", "10.0.0.2", "10.0.0.3").Replace(host), nil)
		defer stopAll(t, s1, s2)
		time.Sleep(time.Second)
		synctest.Wait()
		layout := func(n *node, stage, addr string, routed bool) {
			t.Helper()
			hostRoute := "route 10.0.0.0/24 dev gre1 proto 157 scope link src " + strings.Split(addr, "/")[0]
			if !n.has("tunnel gre1", "addr "+addr) || n.has(hostRoute) != routed {
				t.Errorf("%s: want addr %s, tunnel prefix routed by dmvpnd %v:\n%s", stage, addr, routed, n.kernel.Render())
			}
		}
		layout(s1, "started without host_address", "10.0.0.2/24", false)
		layout(s2, "started with host_address", "10.0.0.3/32", true)

		ctx := context.Background()
		base := len(s1.kernel.Ops())
		if err := s1.ctl.Reload(ctx, parseConfig(t, host)); err != nil {
			t.Fatalf("Reload host_address on: %v", err)
		}
		layout(s1, "host_address on", "10.0.0.2/32", true)
		if d := cmp.Diff([]string{"modify tunnel gre1"}, s1.kernel.Ops()[base:]); d != "" {
			t.Errorf("kernel operations of a host_address reload (-want +got):\n%s", d)
		}
		if err := s1.ctl.Reload(ctx, parseConfig(t, y)); err != nil {
			t.Fatalf("Reload host_address off: %v", err)
		}
		layout(s1, "host_address off", "10.0.0.2/24", false)
	})
}

// TestReloadHandsOverCredentialsAndPrefixes: new IPsec proposals go to the
// IPsec side; a BGP speaker refusing the new prefixes fails the reload.
func TestReloadHandsOverCredentialsAndPrefixes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		y := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1") + spokeBGP +
			"ipsec: {enabled: true, auth: {method: psk, psk: one-secret}, proposals: {ike: [aes256-sha256-modp2048]}}\n"
		fake := ipsectest.NewFake(nil)
		sp := &stubBGP{}
		s1 := start(t, netw, "s1", y, nil, func(d *Deps) {
			d.IPsec = fakeIPsec{fake}
			d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return sp, nil }
		})
		defer stopAll(t, s1)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		next := parseConfig(t, strings.Replace(y, "aes256-sha256-modp2048", "aes256gcm16-prfsha384-ecp384", 1))
		if err := s1.ctl.Reload(ctx, next); err != nil {
			t.Fatalf("Reload proposals: %v", err)
		}
		ups := fake.CredentialUpdates()
		if len(ups) != 1 || !slices.Equal(ups[0].IKE, []string{"aes256gcm16-prfsha384-ecp384"}) || ups[0].Auth.Method != ipsec.AuthPSK {
			t.Errorf("credential updates %+v; want one with the new IKE proposal and PSK auth", ups)
		}

		sp.prefixErr = errInjected
		pfx := parseConfig(t, strings.Replace(y, "prefixes: [192.168.1.0/24]", "prefixes: [192.168.1.0/24, 192.168.5.0/24]", 1))
		if err := s1.ctl.Reload(ctx, pfx); !errors.Is(err, errInjected) {
			t.Errorf("Reload refused by BGP = %v; want the speaker's error", err)
		}
	})
}

// sizer records the neighbor table sizes asked for and fails with err.
type sizer struct {
	mu    sync.Mutex
	sizes []int
	err   error
}

func (s *sizer) size(peers int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, peers)
	return s.err
}

func (s *sizer) got() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// TestReloadResizesNeighborTable: a hub sizes the kernel's neighbor table
// for its cache at start and again when nhrp.limits.cache_size changes; a
// table it may not size (another network namespace) or a failure is
// logged, and neither stops the hub nor fails the reload.
func TestReloadResizesNeighborTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantLog string
	}{
		{"sized", nil, ""},
		{"other namespace", fs.ErrNotExist, "kernel neighbor table not sized: its sysctls belong to the initial network namespace"},
		{"refused", errInjected, "sizing the kernel neighbor table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				core, logs := observer.New(zapcore.InfoLevel)
				sz := &sizer{err: tc.err}
				y := hubYAML("198.51.100.1", "10.0.0.1/24")
				hub := start(t, kerneltest.NewNetwork(), "hub", y, nil, func(d *Deps) {
					d.SizeNeighborTable = sz.size
					d.Log = zap.New(core)
				})
				defer stopAll(t, hub)
				synctest.Wait()
				next := parseConfig(t, strings.Replace(y, "redirect: true", "redirect: true, limits: {cache_size: 20000}", 1))
				if err := hub.ctl.Reload(context.Background(), next); err != nil {
					t.Fatalf("Reload cache size: %v", err)
				}
				if d := cmp.Diff([]int{10000, 20000}, sz.got()); d != "" {
					t.Errorf("neighbor table sizes (-want +got):\n%s", d)
				}
				if n := logs.FilterMessage(tc.wantLog).Len(); tc.wantLog != "" && n != 2 {
					t.Errorf("%q logged %d times, want at start and at the reload", tc.wantLog, n)
				}
			})
		})
	}
}

// TestReloadBGPLive: a reload that adds a BGP neighbor and narrows the
// import policy hands the speaker the new configuration (its neighbors and
// accept ranges); a reload that changes no BGP input does not touch the
// speaker; a restart-only BGP key is refused, named, and not applied.
func TestReloadBGPLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		y := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1") + spokeBGP
		sp := &stubBGP{}
		s1 := start(t, netw, "s1", y, nil, func(d *Deps) {
			d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return sp, nil }
		})
		defer stopAll(t, s1)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()

		live := strings.Replace(y, "neighbors: [{address: 10.0.0.1}]", "neighbors: [{address: 10.0.0.1}, {address: 10.0.0.3, asn: 65003}], lan_space: [192.168.0.0/16]", 1)
		if err := s1.ctl.Reload(ctx, parseConfig(t, live)); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		got, n := sp.lastConfig()
		if n != 1 {
			t.Fatalf("Reconfigure called %d times, want 1", n)
		}
		wantHubs := []routing.Neighbor{
			{Address: netip.MustParseAddr("10.0.0.1"), LocalAddress: netip.MustParseAddr("10.0.0.2")},
			{Address: netip.MustParseAddr("10.0.0.3"), PeerAS: 65003, LocalAddress: netip.MustParseAddr("10.0.0.2")},
		}
		if diff := cmp.Diff(wantHubs, got.Spoke.Hubs, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("neighbors handed to the speaker (-want +got):\n%s", diff)
		}
		wantAccept := []routing.PrefixRange{{Prefix: netip.MustParsePrefix("192.168.0.0/16"), LE: 24}}
		if diff := cmp.Diff(wantAccept, got.Import.Accept, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("import policy handed to the speaker (-want +got):\n%s", diff)
		}

		other := strings.Replace(live, "holding_time: 600s", "holding_time: 300s", 1)
		if other == live {
			t.Fatal("test YAML has no holding_time to change")
		}
		if err := s1.ctl.Reload(ctx, parseConfig(t, other)); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if _, n := sp.lastConfig(); n != 1 {
			t.Errorf("an NHRP-only reload reconfigured the speaker (%d calls)", n)
		}

		bad := strings.Replace(other, "asn: 65000", "asn: 65001", 1)
		err := s1.ctl.Reload(ctx, parseConfig(t, bad))
		if err == nil || !strings.Contains(err.Error(), "bgp.asn") {
			t.Errorf("Reload of bgp.asn = %v, want a refusal naming bgp.asn", err)
		}
		if _, n := sp.lastConfig(); n != 1 {
			t.Errorf("a refused reload reconfigured the speaker (%d calls)", n)
		}
	})
}
