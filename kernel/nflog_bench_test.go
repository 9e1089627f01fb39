package kernel

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkPrivHairpinNotify is one hairpinned packet's way to the
// consumer of HairpinTrap.Hairpins on a veth hairpin (no GRE: it runs on
// the development host with DMVPND_PRIVILEGED=1): the peer sends a UDP
// packet that the hub forwards back out of the interface it came in on,
// the trigger logs it to NFLOG, and the iteration ends when it comes out
// of the channel. ns/op is that latency (send syscall included);
// cpu-ns/notify is this process's user+system CPU per notification,
// the sender's syscall included (the same in every variant).
func BenchmarkPrivHairpinNotify(b *testing.B) {
	hub, peer, h0 := vethHairpin(b)
	// Every packet of the one flow is logged.
	trap, err := NewHairpinTrap(HairpinConfig{NetNS: hub, Group: 7, Rate: 1 << 30, Per: time.Second, Burst: 1 << 30}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := trap.Install(h0); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = trap.Remove() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := trap.Hairpins(ctx)
	if err != nil {
		b.Fatal(err)
	}
	c := udpIn(b, peer, "10.1.0.2:0")
	to := netip.MustParseAddrPort("10.9.0.1:9")
	payload := make([]byte, 64)
	notify := func() {
		if _, err := c.WriteToUDPAddrPort(payload, to); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			b.Fatal("no notification")
		}
	}
	for range 100 { // warm up
		notify()
	}
	var before, after unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &before)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		notify()
	}
	b.StopTimer()
	_ = unix.Getrusage(unix.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/notify")
	if d := trap.Dropped(); d != 0 {
		b.Errorf("%d notifications dropped", d)
	}
}
