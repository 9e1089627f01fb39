package engine_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

type discardConn struct{}

func (discardConn) WriteTo([]byte, netip.Addr) error { return nil }

func benchSpoke(i int) (nbma, proto netip.Addr) {
	return netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)}),
		netip.AddrFrom4([4]byte{10, byte(128 + i>>16), byte(i >> 8), byte(i)})
}

func benchRegistrations(tb testing.TB, n int) []([]byte) {
	out := make([][]byte, n)
	for i := range n {
		nbma, proto := benchSpoke(i)
		b, err := nhrp.NewRegistrationRequest(nbma, proto, addr(hubProto), uint32(i+1), 600, 0, false).Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func benchHub(tb testing.TB) *engine.Engine {
	e, err := engine.New(nhrpsim.WithLimits(engine.Config{
		Proto: addr(hubProto), NBMA: addr(hubNBMA), Server: true, HoldingTime: holding,
		Clock: nhrpsim.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), Conn: discardConn{},
		MaxCache: 1 << 20, Binder: &nhrpsim.Neigh{}, SourceRate: -1,
	}))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// BenchmarkHubRegister10k registers 10,000 spokes with a fresh hub per
// iteration (including the Binder's neighbor table).
func BenchmarkHubRegister10k(b *testing.B) {
	const n = 10000
	pkts := benchRegistrations(b, n)
	var perSpoke uint64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		hub := benchHub(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for i, p := range pkts {
			nbma, _ := benchSpoke(i)
			hub.HandlePacket(nbma, p)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := len(hub.Cache()); got != n {
			b.Fatalf("hub holds %d registrations, want %d", got, n)
		}
		perSpoke = (after.HeapAlloc - before.HeapAlloc) / n
		runtime.KeepAlive(hub)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/registration")
	b.ReportMetric(float64(perSpoke), "bytes/spoke")
}

// BenchmarkHubPerPacket measures one registration refresh and one
// resolution answered from the cache, with 1,000 and 10,000 registered
// spokes: the cost per packet must not grow with the number of spokes.
func BenchmarkHubPerPacket(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		pkts := benchRegistrations(b, n)
		hub := benchHub(b)
		for i, p := range pkts {
			nbma, _ := benchSpoke(i)
			hub.HandlePacket(nbma, p)
		}
		res := make([][]byte, n)
		for i := range n {
			nbma, proto := benchSpoke(i)
			_, target := benchSpoke((i * 7919) % n)
			r, err := nhrp.NewResolutionRequest(nbma, proto, target, uint32(i+1), 600, 0).Marshal()
			if err != nil {
				b.Fatal(err)
			}
			res[i] = r
		}
		runtime.GC() // setup garbage must not be collected inside the measurement
		b.Run(fmt.Sprintf("refresh/spokes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				nbma, _ := benchSpoke(i % n)
				hub.HandlePacket(nbma, pkts[i%n])
			}
		})
		b.Run(fmt.Sprintf("resolve/spokes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				nbma, _ := benchSpoke(i % n)
				hub.HandlePacket(nbma, res[i%n])
			}
		})
		if c := hub.Counters(); c["registrations_refused"] != 0 || c["drop_rate_limited"] != 0 {
			b.Fatalf("unexpected refusals/drops: %v", c)
		}
	}
}

// BenchmarkHubFootprint10k is the engine's own live heap per registered
// spoke (no Binder table), with the daemon's default per-source limit
// (10/s, burst 20): B/spoke right after a burst of 10,000 registrations
// spread over 5 s as in the lab's burst, idle-B/spoke after a minute
// without packets (the registrations hold for 600 s) and one Tick.
func BenchmarkHubFootprint10k(b *testing.B) {
	const n = 10000
	pkts := benchRegistrations(b, n)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var burst, idle int64
	for b.Loop() {
		b.StopTimer()
		clock := nhrpsim.NewClock(t0)
		hub, err := engine.New(nhrpsim.WithLimits(engine.Config{
			Proto: addr(hubProto), NBMA: addr(hubNBMA), Server: true, HoldingTime: holding,
			Clock: clock, Conn: discardConn{}, MaxCache: 1 << 20, SourceRate: 10,
		}))
		if err != nil {
			b.Fatal(err)
		}
		hub.Start()
		heap := func() int64 {
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			return int64(m.HeapAlloc)
		}
		h0 := heap()
		b.StartTimer()
		for i, p := range pkts {
			clock.Set(t0.Add(time.Duration(i) * 500 * time.Microsecond))
			nbma, _ := benchSpoke(i)
			hub.HandlePacket(nbma, p)
		}
		b.StopTimer()
		h1 := heap()
		clock.Set(clock.Now().Add(time.Minute))
		hub.Tick()
		h2 := heap()
		if got := len(hub.Cache()); got != n {
			b.Fatalf("hub holds %d registrations, want %d", got, n)
		}
		burst, idle = (h1-h0)/n, (h2-h0)/n
		runtime.KeepAlive(hub)
		b.StartTimer()
	}
	b.ReportMetric(float64(burst), "B/spoke")
	b.ReportMetric(float64(idle), "idle-B/spoke")
}
