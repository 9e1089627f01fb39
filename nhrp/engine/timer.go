package engine

import (
	"container/heap"
	"time"
)

// timer is one scheduled callback. Timers live in a min-heap ordered by
// deadline then creation order, so Tick runs them deterministically and
// every schedule or cancel costs O(log n). The zero timer is unscheduled,
// so a struct can hold one by value: a cache entry holds its expiry timer
// and is itself what the timer fires, which spares a hub a timer and a
// closure per spoke.
type timer struct {
	at  time.Time
	seq uint64
	pos int // 1 + position in the heap, 0 when not scheduled
	run firer
}

// firer is what a timer runs.
type firer interface{ fire(e *Engine) }

// timerFunc fires by calling itself.
type timerFunc func()

func (f timerFunc) fire(*Engine) { f() }

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos = i + 1
	h[j].pos = j + 1
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.pos = len(*h) + 1
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.pos = 0
	*h = old[:n-1]
	return t
}

// newTimer returns an unscheduled timer running fn.
func newTimer(fn func()) *timer { return &timer{run: timerFunc(fn)} }

// schedule (re)arms t to fire at at.
func (e *Engine) schedule(t *timer, at time.Time) {
	e.timerSeq++
	t.at, t.seq = at, e.timerSeq
	if t.pos > 0 {
		heap.Fix(&e.timers, t.pos-1)
		return
	}
	heap.Push(&e.timers, t)
}

// after arms t to fire d from now.
func (e *Engine) after(t *timer, d time.Duration) { e.schedule(t, e.now.Add(d)) }

// cancel disarms t; a nil or unscheduled timer is fine.
func (e *Engine) cancel(t *timer) {
	if t != nil && t.pos > 0 {
		heap.Remove(&e.timers, t.pos-1)
	}
}

// NextDeadline returns when Tick should next be called, and false when no
// timer is pending.
func (e *Engine) NextDeadline() (time.Time, bool) {
	if len(e.timers) == 0 {
		return time.Time{}, false
	}
	return e.timers[0].at, true
}

// Tick runs every timer whose deadline has passed and frees the
// per-source buckets that have refilled since the last packet (see
// limiter).
func (e *Engine) Tick() {
	e.now = e.cfg.Clock.Now()
	if e.limit != nil {
		e.limit.trim(e.now, len(e.limit.m))
	}
	for len(e.timers) > 0 && !e.timers[0].at.After(e.now) {
		t := heap.Pop(&e.timers).(*timer)
		t.run.fire(e)
	}
}
