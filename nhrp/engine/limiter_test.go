package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// registrationWithCIEs is a registration from src (tunnel address proto)
// carrying n CIEs for consecutive addresses from proto on.
func registrationWithCIEs(t testing.TB, src, proto netip.Addr, id uint32, n int) []byte {
	t.Helper()
	p := nhrp.NewRegistrationRequest(src, proto, addr(hubProto), id, 600, 0, false)
	a := proto
	p.CIEs = p.CIEs[:0]
	for range n {
		p.CIEs = append(p.CIEs, nhrp.CIE{PrefixLength: nhrp.HostPrefixLength, HoldingTime: 600, ClientNBMA: src, ClientProto: a})
		a = a.Next()
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The per-source rate counts CIEs: one packet with more CIEs than the
// burst is dropped before it changes anything, while the same number of
// CIEs within the burst passes.
func TestSourceRateCountsCIEs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cies          int
		wantDrop      uint64
		wantProcessed bool
	}{
		{"within the burst", 10, 0, true},
		{"over the burst", 11, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hubConfig()
			cfg.SourceRate, cfg.SourceBurst = 1, 10
			hub, err := nhrpsim.New().AddNode("hub", hubNBMA, nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			src := addr("198.51.100.9")
			hub.Engine.HandlePacket(src, registrationWithCIEs(t, src, addr("10.255.0.9"), 1, tc.cies))
			c := hub.Engine.Counters()
			if c["drop_rate_limited"] != tc.wantDrop {
				t.Errorf("drop_rate_limited = %d, want %d", c["drop_rate_limited"], tc.wantDrop)
			}
			processed := c["registrations_accepted"]+c["registrations_refused"] > 0
			if processed != tc.wantProcessed {
				t.Errorf("registration processed: %v, want %v (counters %v)", processed, tc.wantProcessed, c)
			}
		})
	}
}

// A full source table takes a new source in O(1): the least recently used
// bucket is recycled when it has refilled, and while every bucket is busy
// new sources share one overflow bucket instead of evicting the busy ones.
func TestSourceTableRecyclesIdleBuckets(t *testing.T) {
	cfg := hubConfig()
	cfg.SourceRate, cfg.SourceBurst, cfg.MaxSources = 1, 2, 2
	net := nhrpsim.New()
	hub, err := net.AddNode("hub", hubNBMA, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := validPackets(t)[2] // a purge request: one CIE
	send := func(src string) { hub.Engine.HandlePacket(addr(src), b) }
	dropped := func() uint64 { return hub.Engine.Counters()["drop_rate_limited"] }

	send("198.51.100.1")
	send("198.51.100.2") // table full, both busy (one token left each)
	send("198.51.100.3") // overflow: two tokens
	send("198.51.100.4") // overflow: last token
	send("198.51.100.5") // overflow empty
	if got := dropped(); got != 1 {
		t.Fatalf("drops with a busy table = %d, want 1 (the third overflow packet)", got)
	}
	send("198.51.100.1") // own bucket still holds one token
	if got := dropped(); got != 1 {
		t.Fatalf("a tabled source lost its bucket to newcomers: drops %d", got)
	}
	// Two seconds refill every bucket: .2 (least recently used) is
	// recycled for .6, which gets a full bucket of its own.
	net.Clock.Set(net.Clock.Now().Add(2 * time.Second))
	send("198.51.100.6")
	send("198.51.100.6")
	send("198.51.100.6")
	if got := dropped(); got != 2 {
		t.Errorf("drops after recycling = %d, want 2 (only .6's third packet)", got)
	}
}

// BenchmarkLimiterNewSourceFullTable measures a packet from a new source
// while the source table is full: O(1), where the former sweep of the whole
// table cost 4-5 ms per new source at 65,536 sources.
func BenchmarkLimiterNewSourceFullTable(b *testing.B) {
	clock := nhrpsim.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	hub, err := engine.New(nhrpsim.WithLimits(engine.Config{
		Proto: addr(hubProto), NBMA: addr(hubNBMA), Server: true, Clock: clock, Conn: discardConn{},
		MaxSources: 65536,
	}))
	if err != nil {
		b.Fatal(err)
	}
	pkt := []byte{0} // dropped as malformed right after the limiter
	src := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range 65536 {
		hub.HandlePacket(src(i), pkt)
	}
	clock.Set(clock.Now().Add(time.Millisecond)) // shorter than one token takes to refill (5 ms): the table stays busy
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		hub.HandlePacket(src(65536+i%(1<<20)), pkt)
	}
}

// A hub whose spokes refresh one by one, each after its bucket refilled,
// allocates nothing more for the per-source limit than without it: the
// freed buckets are reused.
func TestSourceLimitRefreshAllocatesNothing(t *testing.T) {
	const n = 200
	pkts := benchRegistrations(t, n)
	allocs := func(rate float64) float64 {
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := nhrpsim.NewClock(t0)
		hub, err := engine.New(nhrpsim.WithLimits(engine.Config{
			Proto: addr(hubProto), NBMA: addr(hubNBMA), Server: true, HoldingTime: holding,
			Clock: clock, Conn: discardConn{}, SourceRate: rate,
		}))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		refresh := func() {
			clock.Set(clock.Now().Add(time.Second)) // every bucket refills in 0.1 s
			nbma, _ := benchSpoke(i % n)
			hub.HandlePacket(nbma, pkts[i%n])
			i++
		}
		for range n {
			refresh()
		}
		a := testing.AllocsPerRun(n, refresh)
		if c := hub.Counters(); c["registrations_accepted"] != 2*n+1 || c["drop_rate_limited"] != 0 {
			t.Errorf("rate %v: counters %v, want %d registrations accepted, none rate limited", rate, c, 2*n+1)
		}
		return a
	}
	if limited, free := allocs(10), allocs(-1); limited > free {
		t.Errorf("%v allocations per refresh with a per-source limit, %v without", limited, free)
	}
}
