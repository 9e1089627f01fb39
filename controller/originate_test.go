package controller

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

// prefixRecorder is a BGP speaker that records what it is told to
// originate.
type prefixRecorder struct {
	mu   sync.Mutex
	sets [][]netip.Prefix
	// registered and protected record SetRegistered and SetProtected.
	registered [][]netip.Addr
	protected  [][]netip.Prefix
	// stops records Stop ("stop") and StopGraceful ("graceful") calls.
	stops []string
	// configs records Reconfigure.
	configs []routing.Config
}

// Reconfigure records cfg and its originated prefixes (as SetPrefixes).
func (r *prefixRecorder) Reconfigure(ctx context.Context, cfg routing.Config) error {
	record(&r.mu, &r.configs, cfg)
	return r.SetPrefixes(ctx, cfg.Originated())
}

func (r *prefixRecorder) lastConfig() (routing.Config, int) { return latest(&r.mu, &r.configs) }

func (r *prefixRecorder) Start(context.Context) error { return nil }
func (r *prefixRecorder) Stop(context.Context) error {
	record(&r.mu, &r.stops, "stop")
	return nil
}
func (r *prefixRecorder) StopGraceful(context.Context) error {
	record(&r.mu, &r.stops, "graceful")
	return nil
}
func (r *prefixRecorder) Summary(context.Context) ([]routing.NeighborSummary, error) {
	return nil, nil
}

func (r *prefixRecorder) SetRegistered(addrs []netip.Addr) {
	record(&r.mu, &r.registered, slices.Clone(addrs))
}

func (r *prefixRecorder) SetProtected(_ context.Context, nbmas []netip.Prefix) error {
	record(&r.mu, &r.protected, slices.Clone(nbmas))
	return nil
}

func (r *prefixRecorder) SetPrefixes(_ context.Context, desired []netip.Prefix) error {
	p := slices.Clone(desired)
	slices.SortFunc(p, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	record(&r.mu, &r.sets, p)
	return nil
}

func (r *prefixRecorder) last() []netip.Prefix {
	l, _ := latest(&r.mu, &r.sets)
	return l
}

// TestHubOriginatesSummaries runs a Phase 3 hub with a recording BGP
// speaker: the summaries must stay originated at start and after a reload
// that changes the LAN prefixes (SetPrefixes replaces the whole set).
func TestHubOriginatesSummaries(t *testing.T) {
	const base = `
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 600s}
bgp:
  enabled: true
  asn: 65000
  hub_mode: summary
  summaries: [10.1.0.0/16]
`
	pfx := netip.MustParsePrefix
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		cfg := parseConfig(t, base+"  prefixes: [10.1.0.0/24]\n")
		rec := &prefixRecorder{}
		k := kerneltest.New()
		ctl, err := New(cfg, Deps{
			Dataplane: k,
			Misses:    k,
			Lookup:    &fakeRoutes{},
			Listen:    func(int) (kernel.PacketConn, error) { return netw.Listen(cfg.Tunnel.LocalNBMA) },
			NewBGP:    func(routing.Config, routing.RouteSink) (BGP, error) { return rec, nil },
			Clock:     wallClock{},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ctl.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]netip.Prefix{pfx("10.1.0.0/16"), pfx("10.1.0.0/24")}, rec.last(), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("originated after start (-want +got):\n%s", diff)
		}

		next := parseConfig(t, base+"  prefixes: [10.1.0.0/24, 10.2.0.0/24]\n")
		if err := ctl.Reload(ctx, next); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		want := []netip.Prefix{pfx("10.1.0.0/16"), pfx("10.1.0.0/24"), pfx("10.2.0.0/24")}
		if diff := cmp.Diff(want, rec.last(), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("originated after reload (-want +got):\n%s", diff)
		}
	})
}
