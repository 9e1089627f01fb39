package engine

import (
	"net/netip"
	"time"
)

// limiter is the per-source token bucket table: each NBMA source may send
// SourceBurst CIEs at once and SourceRate CIEs per second after that (a
// packet without CIEs costs one). The table holds at most MaxSources
// buckets in least-recently-used order; a new source takes the least
// recently used bucket when that one has refilled (it was idle long enough
// to have forgotten nothing), else it shares one overflow bucket with every
// other source that found the table busy. Both cases are O(1): there is no
// sweep. A refilled bucket is the same as none (a new one starts full), so
// each lookup also frees up to trimPerGet refilled buckets from the least
// recently used end: a hub holds buckets for the sources whose buckets
// are still refilling, not one per spoke it ever heard from. Up to
// maxSpare freed buckets are kept for the next new sources, so that
// spokes refreshing one by one reuse them instead of allocating.
type limiter struct {
	rate, burst float64
	max         int
	m           map[netip.Addr]*bucket
	lru         bucket // sentinel: lru.next most recent, lru.prev least
	overflow    bucket
	spare       *bucket // freed buckets, linked by next
	spares      int
}

// bucket is one source's token bucket, linked into the LRU list.
type bucket struct {
	addr       netip.Addr
	tokens     float64
	last       time.Time
	prev, next *bucket
}

func newLimiter(rate, burst float64, max int, now time.Time) *limiter {
	l := &limiter{rate: rate, burst: burst, max: max, m: map[netip.Addr]*bucket{}}
	l.lru.next, l.lru.prev = &l.lru, &l.lru
	l.overflow = bucket{tokens: burst, last: now}
	return l
}

// trimPerGet bounds the refilled buckets one lookup frees: more than the
// one a lookup may add, so the table shrinks to the sources still refilling.
// maxSpare bounds the freed buckets kept for reuse.
const (
	trimPerGet = 2
	maxSpare   = 64
)

// get returns the bucket of src, making it the most recently used.
func (l *limiter) get(src netip.Addr, now time.Time) *bucket {
	l.trim(now, trimPerGet)
	if b := l.m[src]; b != nil {
		l.unlink(b)
		l.pushFront(b)
		return b
	}
	var b *bucket
	switch {
	case len(l.m) < l.max && l.spare != nil:
		b, l.spare = l.spare, l.spare.next
		l.spares--
	case len(l.m) < l.max:
		b = &bucket{}
	case l.refilled(l.lru.prev, now):
		b = l.lru.prev // idle: full again, recycle it
		l.unlink(b)
		delete(l.m, b.addr)
	default:
		return &l.overflow
	}
	*b = bucket{addr: src, tokens: l.burst, last: now}
	l.m[src] = b
	l.pushFront(b)
	return b
}

// refilled reports whether b is full again at now: take would find it
// as a new bucket starts.
func (l *limiter) refilled(b *bucket, now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst
}

// trim frees up to n refilled buckets from the least recently used end.
func (l *limiter) trim(now time.Time, n int) {
	for ; n > 0 && l.lru.prev != &l.lru && l.refilled(l.lru.prev, now); n-- {
		b := l.lru.prev
		l.unlink(b)
		delete(l.m, b.addr)
		if l.spares < maxSpare {
			b.next, l.spare = l.spare, b
			l.spares++
		}
	}
}

func (l *limiter) unlink(b *bucket) {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

func (l *limiter) pushFront(b *bucket) {
	b.prev, b.next = &l.lru, l.lru.next
	l.lru.next.prev = b
	l.lru.next = b
}

// take refills b up to now and takes n tokens if it holds them.
func (l *limiter) take(b *bucket, n float64, now time.Time) bool {
	b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*l.rate, l.burst)
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}
