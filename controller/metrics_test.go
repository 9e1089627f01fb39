package controller

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// TestMetricsFollowRegistration: a spoke's per-NHS gauge, last success
// time, readiness and "sent" registration counter follow its registration,
// and the hub's peers-by-state gauge agrees with its show dmvpn rows.
func TestMetricsFollowRegistration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil)
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1", "198.51.100.9", "10.0.0.9"), nil)
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"), nil)
		defer stopAll(t, s1, s2, hub)
		time.Sleep(metricsInterval + time.Second)
		synctest.Wait()

		if got := metricValue(t, s1.m.NHSUp.WithLabelValues("198.51.100.1")); got != 1 {
			t.Errorf("s1 nhs_up{198.51.100.1} = %v, want 1", got)
		}
		if got := metricValue(t, s1.m.NHSUp.WithLabelValues("198.51.100.9")); got != 0 {
			t.Errorf("s1 nhs_up{198.51.100.9} (no such hub) = %v, want 0", got)
		}
		last := metricValue(t, s1.m.NHSLastRegistration.WithLabelValues("198.51.100.1"))
		if now := float64(time.Now().Unix()); last <= 0 || last > now {
			t.Errorf("s1 last registration = %v, want in (0, %v]", last, now)
		}
		if got := metricValue(t, s1.m.Registrations.WithLabelValues("sent", "success")); got < 1 {
			t.Errorf("s1 registrations sent/success = %v, want >= 1", got)
		}
		if got := metricValue(t, s1.m.Ready); got != 1 {
			t.Errorf("s1 ready = %v, want 1", got)
		}
		if got := metricValue(t, hub.m.CacheEntries); got != 2 {
			t.Errorf("hub cache entries = %v, want 2", got)
		}
		if got := metricValue(t, hub.m.CacheLimit); got != 10000 {
			t.Errorf("hub cache limit = %v, want 10000", got)
		}
		d, err := hub.ctl.DMVPN(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		byState := map[api.PeerState]float64{}
		for _, p := range d.Peers {
			byState[p.State]++
		}
		for _, st := range []api.PeerState{api.PeerUp, api.PeerNHRP, api.PeerIKE} {
			if got := metricValue(t, hub.m.Peers.WithLabelValues(strings.ToLower(string(st)))); got != byState[st] {
				t.Errorf("hub peers{%s} = %v, show dmvpn has %v", st, got, byState[st])
			}
		}
		if got := metricValue(t, s1.m.LoopHeartbeat); got <= 0 {
			t.Errorf("loop heartbeat = %v", got)
		}

		// The hub goes: after the holding time the registration lapses and
		// the gauge drops, readiness with it.
		hub.stop(t)
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		if got := metricValue(t, s1.m.NHSUp.WithLabelValues("198.51.100.1")); got != 0 {
			t.Errorf("s1 nhs_up after hub loss = %v, want 0", got)
		}
		if got := metricValue(t, s1.m.Ready); got != 0 {
			t.Errorf("s1 ready after hub loss = %v, want 0", got)
		}
		if got := metricValue(t, s1.m.Registrations.WithLabelValues("sent", "timeout")); got < 1 {
			t.Errorf("s1 registrations sent/timeout = %v, want >= 1", got)
		}
		hub.done <- nil // stopAll stops it again
	})
}

// TestDropReasonsAreTheEngines: every drop series carries the name of an
// engine drop counter with the same value, and every engine drop counter
// has its series. A hub with room for one entry refuses the second spoke
// (cache_full) and a garbage packet is malformed.
func TestDropReasonsAreTheEngines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", `
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 600s, limits: {cache_size: 1}}
`, nil)
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil)
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"), nil)
		defer stopAll(t, s1, s2, hub)
		rogue, err := netw.Listen(netip.MustParseAddr("198.51.100.66"))
		if err != nil {
			t.Fatal(err)
		}
		defer rogue.Close()
		time.Sleep(2 * time.Second)
		if _, err := rogue.WriteTo([]byte{0, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, netip.MustParseAddr("198.51.100.1")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(metricsInterval + time.Second)
		synctest.Wait()
		// Time stands still in the bubble while this goroutine runs: no
		// retransmission lands between the publication and the read.
		hub.ctl.publishMetrics(context.Background())
		counters, err := hub.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Every reason of the engine's enumeration has a series from the
		// start (0 until counted); nothing else does.
		fromEngine := map[string]float64{}
		for _, r := range engine.AllDropReasons() {
			fromEngine[r.String()] = 0
		}
		for name, v := range counters {
			if r, ok := strings.CutPrefix(name, "nhrp_drop_"); ok {
				fromEngine[r] = float64(v)
			}
		}
		for _, want := range []string{"cache_full", "malformed"} {
			if fromEngine[want] == 0 {
				t.Errorf("engine counted no %s drop; counters %v", want, counters)
			}
		}
		mfs, err := hub.m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		series := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "dmvpnd_nhrp_drops_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				series[label(m, "reason")] = m.GetCounter().GetValue()
			}
		}
		if diff := cmp.Diff(fromEngine, series); diff != "" {
			t.Errorf("drop series differ from the engine's drop counters (-engine +metrics):\n%s", diff)
		}
	})
}

// The engine's counters of packets held for an SA feed their own series.
func TestHeldForSAMetrics(t *testing.T) {
	m := metrics.New("test")
	engineCounterMetrics(m, "rx_held_for_sa", 3)
	engineCounterMetrics(m, "rx_released_by_sa", 2)
	if held, released := testutil.ToFloat64(m.HeldForSA), testutil.ToFloat64(m.ReleasedBySA); held != 3 || released != 2 {
		t.Errorf("held_for_sa_total %v, released_by_sa_total %v; want 3, 2", held, released)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestPeerCountFollowsEngine: the metrics snapshot reuses its count of
// peers by state while nothing happens, and counts again once a peer
// comes or goes (and once the count is older than peerCountMaxAge).
func TestPeerCountFollowsEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := settledBigHub(t, 20)
		up := func() int {
			t.Helper()
			var v view
			if err := hub.ctl.run(context.Background(), func() { v = hub.ctl.takeView() }); err != nil {
				t.Fatal(err)
			}
			return v.peers["up"]
		}
		registerSpokes(t, hub, 10)
		if got := up(); got != 10 {
			t.Fatalf("after 10 registrations: %d peers up, want 10", got)
		}
		registerSpokes(t, hub, 15) // 5 more
		if got := up(); got != 15 {
			t.Fatalf("after 15 registrations: %d peers up, want 15", got)
		}
		_, proto := spokeAddrs(3)
		if err := hub.ctl.run(context.Background(), func() { hub.ctl.eng.ClearRegistration(proto) }); err != nil {
			t.Fatal(err)
		}
		if got := up(); got != 14 {
			t.Fatalf("after clearing one registration: %d peers up, want 14", got)
		}
	})
}

// BenchmarkIdleMinute10k is what an idle hub with 10k registrations does
// in one minute, its CPU (ns/op) and its allocations: twelve metrics
// publications (metricsInterval) and two full resyncs (resyncInterval),
// each followed by the loop's reconcile. Allocations at idle are what
// makes an idle hub's RSS creep (pages touched again before the next GC).
func BenchmarkIdleMinute10k(b *testing.B) {
	hub := benchHub(b, 10000)
	defer hub.cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		idleMinute(b, hub.ctl)
	}
}

// idleMinute is the periodic work of one idle minute.
func idleMinute(t testing.TB, c *Controller) {
	ctx := context.Background()
	for i := range time.Minute / metricsInterval {
		c.publishMetrics(ctx)
		if i%(resyncInterval/metricsInterval) == 0 {
			if err := c.run(ctx, func() { c.resync(); c.reconcile(ctx) }); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// idleMinuteAllocs bounds the allocations of an idle minute with 10k
// registrations (138 when set; it was 426 while the state gauges were
// reset at every publication): none may be per entry.
const idleMinuteAllocs = 160

// TestIdleMinuteAllocs: an idle hub's periodic work allocates next to
// nothing, and nothing per registration (BenchmarkIdleMinute10k's minute).
func TestIdleMinuteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	if testing.Short() {
		t.Skip("registers 10k spokes")
	}
	hub := readyBigHub(t, 10000)
	defer hub.cancel()
	registerSpokes(t, hub, 10000)
	idleMinute(t, hub.ctl) // the first resync after the burst lists the neighbors
	if n := testing.AllocsPerRun(5, func() { idleMinute(t, hub.ctl) }); n > idleMinuteAllocs {
		t.Errorf("an idle minute with 10k registrations: %.0f allocations, want at most %d", n, idleMinuteAllocs)
	}
}
