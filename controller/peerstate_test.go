package controller

import (
	"runtime"
	"testing"
)

// BenchmarkPeerFootprint10k is the live heap a hub holds per registered
// spoke: the growth of the heap after a GC from before to after 10k
// registrations, the controller's and the engine's state together with
// the fake kernel's table (about 220 B of it per entry, see
// -memprofile), which stays the same from one change to the next.
func BenchmarkPeerFootprint10k(b *testing.B) {
	const n = 10000
	var perSpoke uint64
	for b.Loop() {
		b.StopTimer()
		hub := readyBigHub(b, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		registerSpokes(b, hub, n)
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perSpoke = (after.HeapAlloc - before.HeapAlloc) / n
		hub.cancel()
		<-hub.done
		b.StartTimer()
	}
	b.ReportMetric(float64(perSpoke), "heap-bytes/spoke")
}
