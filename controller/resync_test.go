package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp"
)

// bigHubYAML is a hub whose tunnel prefix and cache hold n spokes.
func bigHubYAML(n int) string {
	return fmt.Sprintf(`
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: 10.0.0.1/16}
nhrp: {role: hub, network_id: 1, holding_time: 600s, limits: {cache_size: %d}}
`, n+16)
}

// settledBigHub starts a bigHubYAML(n) hub in the test's synctest bubble,
// stops it when the test ends, and returns once its start has settled.
func settledBigHub(t *testing.T, n int) *node {
	t.Helper()
	hub := start(t, kerneltest.NewNetwork(), "hub", bigHubYAML(n), nil)
	t.Cleanup(func() { stopAll(t, hub) })
	time.Sleep(time.Second)
	synctest.Wait()
	return hub
}

func spokeAddrs(i int) (nbma, proto netip.Addr) {
	return netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), netip.AddrFrom4([4]byte{10, 0, 1 + byte(i>>8), byte(i)})
}

// registerSpokes hands the hub n registrations in batches, as the reader
// would, and checks that all were programmed.
func registerSpokes(t testing.TB, hub *node, n int) {
	t.Helper()
	var batch []packet
	flush := func() {
		ps := batch
		batch = nil
		if err := hub.ctl.run(context.Background(), func() { hub.ctl.handleBatch(ps) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		nbma, proto := spokeAddrs(i)
		b, err := nhrp.NewRegistrationRequest(nbma, proto, netip.MustParseAddr("10.0.0.1"), uint32(i+1), 600, 0, false).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, packet{from: nbma, b: b})
		if len(batch) == maxReadBatch {
			flush()
		}
	}
	flush()
	if got := len(hub.kernel.Lines()) - 1; got < n {
		t.Fatalf("%d kernel lines after %d registrations", got, n)
	}
}

// resync runs the periodic neighbor repair on the hub's loop.
func resync(t testing.TB, hub *node) {
	t.Helper()
	if err := hub.ctl.run(context.Background(), hub.ctl.resyncNeighbors); err != nil {
		t.Fatal(err)
	}
}

// TestResyncWritesOnlyDifferences: the resync dumps the table once and
// rewrites exactly the permanent entries removed or changed behind
// dmvpnd's back, in one batch; with nothing changed it writes nothing.
func TestResyncWritesOnlyDifferences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := settledBigHub(t, 50)
		registerSpokes(t, hub, 50)

		ops, batches, walks := len(hub.kernel.Ops()), len(hub.kernel.NeighborBatches()), hub.kernel.Walks()
		resync(t, hub)
		if got := hub.kernel.Ops()[ops:]; len(got) != 0 {
			t.Errorf("unchanged table: resync wrote %q", got)
		}
		if got := hub.kernel.NeighborBatches()[batches:]; len(got) != 0 {
			t.Errorf("unchanged table: resync sent batches %v", got)
		}
		if got := hub.kernel.Walks() - walks; got != 1 {
			t.Errorf("resync dumped the table %d times, want once", got)
		}

		_, gone := spokeAddrs(7)
		nbma9, aged := spokeAddrs(9)
		hub.kernel.DeleteNeighborBehindBack(gone)
		hub.kernel.SetNeighborState(aged, kernel.NeighStale)
		ops, batches = len(hub.kernel.Ops()), len(hub.kernel.NeighborBatches())
		resync(t, hub)
		nbma7, _ := spokeAddrs(7)
		want := []string{
			fmt.Sprintf("replace neighbor %s lladdr %s PERMANENT", gone, nbma7),
			fmt.Sprintf("replace neighbor %s lladdr %s PERMANENT", aged, nbma9),
		}
		got := hub.kernel.Ops()[ops:]
		if d := cmp.Diff(want, got, cmpSorted); d != "" {
			t.Errorf("repairs (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]int{2}, hub.kernel.NeighborBatches()[batches:]); d != "" {
			t.Errorf("repair batches (-want +got):\n%s", d)
		}
		var repairs uint64
		if err := hub.ctl.run(context.Background(), func() { repairs = hub.ctl.stats["kernel_neighbor_repairs"] }); err != nil {
			t.Fatal(err)
		}
		if repairs != 2 {
			t.Errorf("kernel_neighbor_repairs = %d, want 2", repairs)
		}
	})
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// TestResyncAllocations: a resync allocates nothing when nothing changed,
// whatever the number of entries (it is O(changes), not O(entries)), and
// so does the metrics snapshot's peer count beyond its fixed maps.
func TestResyncAllocations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var resyncAllocs, viewAllocs []float64
		for _, n := range []int{100, 2000} {
			hub := start(t, kerneltest.NewNetwork(), "hub", bigHubYAML(n), nil)
			time.Sleep(time.Second)
			synctest.Wait()
			registerSpokes(t, hub, n)
			resync(t, hub) // grows the reused map once
			if err := hub.ctl.run(context.Background(), func() {
				resyncAllocs = append(resyncAllocs, testing.AllocsPerRun(5, hub.ctl.resyncNeighbors))
				viewAllocs = append(viewAllocs, testing.AllocsPerRun(5, func() { _ = hub.ctl.takeView() }))
			}); err != nil {
				t.Fatal(err)
			}
			stopAll(t, hub)
		}
		if resyncAllocs[0] != 0 || resyncAllocs[1] != 0 {
			t.Errorf("allocations per unchanged resync: %v for 100 and 2000 entries, want 0", resyncAllocs)
		}
		if viewAllocs[1] > viewAllocs[0] {
			t.Errorf("allocations per metrics snapshot grow with the cache: %v for 100 and 2000 entries", viewAllocs)
		}
	})
}

// BenchmarkResyncUnchanged10k is the periodic resync of a hub holding 10k
// registrations of which none changed (the fake kernel: what is measured
// is dmvpnd's side; the kernel's is in kernel.TestPrivNeighborBatchScale).
func BenchmarkResyncUnchanged10k(b *testing.B) {
	benchOnLoop(b, func(c *Controller) { c.resyncNeighbors() })
}

// BenchmarkMetricsView10k is the metrics job's snapshot of the loop with
// 10k registrations.
func BenchmarkMetricsView10k(b *testing.B) {
	benchOnLoop(b, func(c *Controller) { _ = c.takeView() })
}

// benchOnLoop measures op on the loop of a hub with 10k registrations.
func benchOnLoop(b *testing.B, op func(*Controller)) {
	hub := benchHub(b, 10000)
	defer hub.cancel()
	b.ReportAllocs()
	b.ResetTimer()
	if err := hub.ctl.run(context.Background(), func() {
		for b.Loop() {
			op(hub.ctl)
		}
	}); err != nil {
		b.Fatal(err)
	}
}

// benchHub runs a hub outside a synctest bubble with n registrations.
func benchHub(b *testing.B, n int) *node {
	b.Helper()
	hub := readyBigHub(b, n)
	registerSpokes(b, hub, n)
	return hub
}

// readyBigHub starts a hub for n spokes outside a synctest bubble and
// waits until it is ready.
func readyBigHub(b testing.TB, n int) *node {
	b.Helper()
	return readyHub(b, kerneltest.NewNetwork(), bigHubYAML(n))
}

// refreshHubYAML is bigHubYAML(n) with a per-source rate no benchmark
// reaches: a refresh benchmark re-registers each spoke far more often
// than the default 10/s admits.
func refreshHubYAML(n int) string {
	return strings.Replace(bigHubYAML(n), "limits: {", "limits: {per_source_rate: 1000000, ", 1)
}

// readyHub starts a hub with yaml on netw outside a synctest bubble and
// waits until it is ready.
func readyHub(b testing.TB, netw *kerneltest.Network, yaml string) *node {
	b.Helper()
	hub := start(b, netw, "hub", yaml, nil)
	select {
	case <-hub.ctl.ready:
	case <-time.After(10 * time.Second):
		b.Fatal("hub not ready")
	}
	return hub
}

// syncOnly hides the fake's batch interfaces: the controller falls back to
// one neighbor write per registration, as before batching.
type syncOnly struct{ kernel.Dataplane }

// BenchmarkRegistrationBurst10k is dmvpnd's own CPU per registration (the
// fake kernel costs next to nothing) for a burst of 10k registrations
// handed over in reader-sized batches: batched neighbor writes and held
// replies against one write per registration.
func BenchmarkRegistrationBurst10k(b *testing.B) {
	for _, mode := range []string{"batched", "one-by-one"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				hub := start(b, kerneltest.NewNetwork(), "hub", bigHubYAML(10000), nil, func(d *Deps) {
					if mode == "one-by-one" {
						d.Dataplane = syncOnly{d.Dataplane}
					}
				})
				<-hub.ctl.ready
				b.StartTimer()
				registerSpokes(b, hub, 10000)
				b.StopTimer()
				hub.cancel()
				<-hub.done
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/registration")
		})
	}
}

// changeCounted is the fake kernel with a neighbor change generation the
// test moves by hand (kernel.NeighborChangeCounter).
type changeCounted struct {
	*kerneltest.Fake
	gen atomic.Uint64
}

func (c *changeCounted) NeighborChanges() (uint64, bool) { return c.gen.Load(), true }

// TestResyncSkipsDumpWhileUnchanged: with a dataplane that reports
// neighbor changes, a resync dumps the table only when the tunnel's
// entries changed since the last dump found them as wanted, or after
// neighborResyncSkips skipped resyncs; a change it hears of is repaired.
func TestResyncSkipsDumpWhileUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := kerneltest.New()
		cc := &changeCounted{Fake: k}
		hub := startOn(t, kerneltest.NewNetwork(), "hub", bigHubYAML(50), nil, k, nil, func(d *Deps) { d.Dataplane = cc })
		defer stopAll(t, hub)
		time.Sleep(time.Second)
		synctest.Wait()
		registerSpokes(t, hub, 50)

		dumps := func(n int) int {
			t.Helper()
			before := k.Walks()
			for range n {
				resync(t, hub)
			}
			return k.Walks() - before
		}
		if got := dumps(1); got != 1 {
			t.Fatalf("first resync dumped %d times, want 1", got)
		}
		if got := dumps(neighborResyncSkips); got != 0 {
			t.Errorf("%d resyncs with nothing changed dumped %d times, want 0", neighborResyncSkips, got)
		}
		if got := dumps(1); got != 1 {
			t.Errorf("resync after %d skipped dumped %d times, want 1", neighborResyncSkips, got)
		}

		_, gone := spokeAddrs(7)
		k.DeleteNeighborBehindBack(gone)
		cc.gen.Add(1)
		ops := len(k.Ops())
		if got := dumps(1); got != 2 {
			t.Errorf("resync after a change dumped %d times, want 2 (count, then find)", got)
		}
		nbma7, _ := spokeAddrs(7)
		want := []string{fmt.Sprintf("replace neighbor %s lladdr %s PERMANENT", gone, nbma7)}
		if d := cmp.Diff(want, k.Ops()[ops:]); d != "" {
			t.Errorf("repairs (-want +got):\n%s", d)
		}
		// The repair's own write is a change: the next resync dumps once more.
		cc.gen.Add(1)
		if got := dumps(2); got != 1 {
			t.Errorf("two resyncs after the repair dumped %d times, want 1", got)
		}
	})
}
