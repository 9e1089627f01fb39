package engine

import (
	"net/netip"
	"testing"
	"time"
)

// A bucket that has refilled is freed by the next lookups (trimPerGet at
// a time, least recently used first) or by Tick's trim, and a source
// whose bucket was freed starts again with a full one, as it would have
// found its own.
func TestLimiterFreesRefilledBuckets(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(1, 2, 16, t0) // an empty bucket refills in 2 s
	src := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, i}) }
	for i := range byte(5) {
		if b := l.get(src(i), t0); !l.take(b, 2, t0) {
			t.Fatalf("source %d: a new bucket did not hold the burst", i)
		}
	}
	if got := len(l.m); got != 5 {
		t.Fatalf("%d buckets for 5 sources that emptied theirs, want 5", got)
	}
	at := t0.Add(2 * time.Second)
	if b := l.get(src(4), at); !l.take(b, 2, at) {
		t.Errorf("source 4's bucket did not refill in 2 s")
	}
	if got := len(l.m); got != 3 {
		t.Errorf("after one lookup with every bucket refilled: %d buckets, want 3 (two freed)", got)
	}
	if _, ok := l.m[src(0)]; ok {
		t.Errorf("the least recently used refilled bucket (.0) is still held")
	}
	if b := l.get(src(0), at); !l.take(b, 2, at) {
		t.Errorf("source 0's new bucket does not hold the burst")
	}
	if got := len(l.m); got != 2 {
		t.Errorf("after a second lookup: %d buckets, want 2 (.4 and .0)", got)
	}
	if b := l.get(src(0), at); l.take(b, 1, at) {
		t.Errorf("source 0 took a token from the bucket it has just emptied")
	}
	l.trim(t0.Add(time.Hour), len(l.m))
	if len(l.m) != 0 || l.lru.next != &l.lru || l.lru.prev != &l.lru {
		t.Errorf("an hour later: %d buckets left", len(l.m))
	}
}
