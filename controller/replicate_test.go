package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
)

// fakeSender records the destinations of each Send; refuse makes it take
// only the first n copies of every packet.
type fakeSender struct {
	sends  [][]netip.Addr
	refuse int // copies refused per packet (taken from the end)
	keep   bool
}

func (f *fakeSender) Send(pkt []byte, nbmas []netip.Addr) (int, error) {
	if f.keep {
		f.sends = append(f.sends, append([]netip.Addr(nil), nbmas...))
	}
	if f.refuse > 0 {
		return len(nbmas) - f.refuse, errors.New("refused")
	}
	return len(nbmas), nil
}
func (f *fakeSender) Close() error { return nil }

type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { return c.t }

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestReplicatorTargetsAndRateLimit(t *testing.T) {
	clk := &stepClock{t: time.Unix(1000, 0)}
	fs := &fakeSender{keep: true}
	r := newReplicator(fs, clk.Now, 1, 2, zap.NewNop()) // 1/s per peer, burst 2
	pkt := []byte{0x45}

	r.replicate(pkt) // no targets yet
	r.setTargets(addrs("192.0.2.1", "192.0.2.2"))
	for range 3 {
		r.replicate(pkt)
	}
	// Burst 2: the third packet is limited for both peers.
	want := [][]netip.Addr{addrs("192.0.2.1", "192.0.2.2"), addrs("192.0.2.1", "192.0.2.2")}
	if d := cmp.Diff(want, fs.sends, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("sends (-want +got):\n%s", d)
	}
	// A new set keeps 192.0.2.2's empty bucket; 192.0.2.3 starts full.
	r.setTargets(addrs("192.0.2.2", "192.0.2.3"))
	fs.sends = nil
	r.replicate(pkt)
	clk.t = clk.t.Add(time.Second) // one token for everyone
	r.replicate(pkt)
	want = [][]netip.Addr{addrs("192.0.2.3"), addrs("192.0.2.2", "192.0.2.3")}
	if d := cmp.Diff(want, fs.sends, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("sends after the change (-want +got):\n%s", d)
	}
	fs.refuse = 1
	r.replicate(pkt) // 192.0.2.3 has a token left, 192.0.2.2 not: one copy, refused
	got := map[string]uint64{}
	r.counters(got)
	wantC := map[string]uint64{
		"multicast_packets": 7, "multicast_copies": 7, "multicast_rate_limited": 4, "multicast_send_errors": 1,
		"multicast_no_targets":                1,
		"multicast_copies_to_192.0.2.2":       3,
		"multicast_rate_limited_to_192.0.2.2": 3,
		"multicast_copies_to_192.0.2.3":       3,
		"multicast_rate_limited_to_192.0.2.3": 0,
	}
	if d := cmp.Diff(wantC, got); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}
}

// BenchmarkReplicate measures the controller's share of one packet's
// replication to n peers (target selection, per-peer rate limit and
// counters), reported per copy. The kernel's share is
// kernel.BenchmarkMulticastBatch (filling the sendmmsg messages).
func BenchmarkReplicate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			clk := &stepClock{t: time.Unix(1000, 0)}
			r := newReplicator(&fakeSender{}, clk.Now, 1e9, 1<<30, zap.NewNop())
			t := make([]netip.Addr, n)
			for i := range t {
				t[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			}
			r.setTargets(t)
			pkt := make([]byte, 80)
			r.replicate(pkt)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clk.t = clk.t.Add(time.Microsecond)
				r.replicate(pkt)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/copy")
			allocs := testing.AllocsPerRun(10, func() { r.replicate(pkt) })
			b.ReportMetric(allocs/float64(n), "allocs/copy")
		})
	}
}
