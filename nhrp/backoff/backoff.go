package backoff

import "time"

// Policy bounds a backoff: the first delay is Min, each following one twice
// the previous, never more than Max. Where Min exceeds Max, Max wins.
type Policy struct {
	Min, Max time.Duration
}

// Next is the delay that follows prev: twice prev, at least Min, at most
// Max. A zero prev (nothing waited yet) gives Min. Doubling never
// overflows: a prev above Max/2 gives Max.
func (p Policy) Next(prev time.Duration) time.Duration {
	if prev > p.Max/2 {
		return p.Max
	}
	return min(max(2*prev, p.Min), p.Max)
}

// Nth is the delay before retry n (counted from 1): Min·2^(n-1), at most
// Max. An n below 1 gives the first delay, as for n = 1.
func (p Policy) Nth(n int) time.Duration {
	d := p.Next(0)
	for i := 1; i < n && d < p.Max; i++ {
		d = p.Next(d)
	}
	return d
}

// Backoff is a Policy with the delay last handed out, for a retry loop
// that waits Next() after each failure and calls Reset after a success.
// The zero value of the state is "nothing waited yet".
type Backoff struct {
	Policy
	cur time.Duration
}

// New returns a Backoff from min to max.
func New(min, max time.Duration) Backoff {
	return Backoff{Policy: Policy{Min: min, Max: max}}
}

// Next advances the backoff and returns the delay to wait now: Min after
// New or Reset, then twice the previous one up to Max.
func (b *Backoff) Next() time.Duration {
	b.cur = b.Policy.Next(b.cur)
	return b.cur
}

// Peek is the delay the next call of Next will return, without advancing
// (for a log line that announces the coming wait).
func (b *Backoff) Peek() time.Duration { return b.Policy.Next(b.cur) }

// Reset starts over: the next delay is Min again.
func (b *Backoff) Reset() { b.cur = 0 }
