package engine

import (
	"container/heap"
	"time"
)

// timer is one scheduled callback. Timers live in a min-heap ordered by
// deadline then creation order, so Tick runs them deterministically and
// every schedule or cancel costs O(log n).
type timer struct {
	at  time.Time
	seq uint64
	idx int // position in the heap, -1 when not scheduled
	fn  func()
}

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
	h[i].idx = i
	h[j].idx = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.idx = -1
	*h = old[:n-1]
	return t
}

// newTimer returns an unscheduled timer running fn.
func newTimer(fn func()) *timer { return &timer{idx: -1, fn: fn} }

// schedule (re)arms t to fire at at.
func (e *Engine) schedule(t *timer, at time.Time) {
	e.timerSeq++
	t.at, t.seq = at, e.timerSeq
	if t.idx >= 0 {
		heap.Fix(&e.timers, t.idx)
		return
	}
	heap.Push(&e.timers, t)
}

// after arms t to fire d from now.
func (e *Engine) after(t *timer, d time.Duration) { e.schedule(t, e.now.Add(d)) }

// cancel disarms t; a nil or unscheduled timer is fine.
func (e *Engine) cancel(t *timer) {
	if t != nil && t.idx >= 0 {
		heap.Remove(&e.timers, t.idx)
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
		t.fn()
	}
}
