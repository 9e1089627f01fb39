package controller

import (
	"context"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp"
)

// refreshPackets are the re-registrations of spokes 0..n-1 as
// registerSpokes registered them (same addresses and holding time, new
// request IDs).
func refreshPackets(tb testing.TB, n int) []packet {
	tb.Helper()
	ps := make([]packet, n)
	for i := range n {
		nbma, proto := spokeAddrs(i)
		b, err := nhrp.NewRegistrationRequest(nbma, proto, netip.MustParseAddr("10.0.0.1"), uint32(n+i+1), 600, 0, false).Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		ps[i] = packet{from: nbma, b: b}
	}
	return ps
}

// BenchmarkRefresh10k is the loop's work for one re-registration of an
// unchanged spoke on a hub holding 10k registrations, the steady state
// of a hub whose spokes refresh one at a time (a batch of one packet):
// the batch, then what the loop does after every input (iterate).
func BenchmarkRefresh10k(b *testing.B) {
	const n = 10000
	hub := readyHub(b, kerneltest.NewNetwork(), refreshHubYAML(n))
	defer hub.cancel()
	registerSpokes(b, hub, n)
	ps := refreshPackets(b, n)
	ctx := context.Background()
	replies := hub.m.PacketsSent.WithLabelValues("registration_reply")
	before := metricValue(b, replies)
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	if err := hub.ctl.run(ctx, func() {
		for b.Loop() {
			hub.ctl.handleBatch(ps[i%n : i%n+1])
			hub.ctl.iterate(ctx)
			i++
		}
	}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got := metricValue(b, replies) - before; got != float64(i) {
		b.Fatalf("%v registration replies for %d refreshes", got, i)
	}
}

// BenchmarkRefreshRoundTrip10k is one spoke's re-registration on a hub
// holding 10k registrations, from the spoke's send to its reply, through
// the fake network: the reader, the hand-off to the loop and the loop's
// work, one refresh at a time (the steady state of spokes refreshing at
// a low rate). Its CPU beyond BenchmarkRefresh10k's is goroutine
// hand-offs.
func BenchmarkRefreshRoundTrip10k(b *testing.B) {
	const n = 10000
	netw := kerneltest.NewNetwork()
	// One spoke refreshes as fast as the hub answers.
	hub := readyHub(b, netw, refreshHubYAML(n))
	defer hub.cancel()
	registerSpokes(b, hub, n)
	nbma, _ := spokeAddrs(0)
	spoke, err := netw.Listen(nbma)
	if err != nil {
		b.Fatal(err)
	}
	defer spoke.Close()
	ps := refreshPackets(b, 1)
	hubNBMA := netip.MustParseAddr("198.51.100.1")
	buf := make([]byte, maxPacket)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := spoke.WriteTo(ps[0].b, hubNBMA); err != nil {
			b.Fatal(err)
		}
		m, _, err := spoke.ReadFrom(buf)
		if err != nil {
			b.Fatal(err)
		}
		if t, ok := nhrp.PeekType(buf[:m]); !ok || t != nhrp.TypeRegistrationReply {
			b.Fatalf("hub answered %v (%v), want a registration reply", t, ok)
		}
	}
}
