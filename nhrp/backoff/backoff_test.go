package backoff

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPolicyNext(t *testing.T) {
	p := Policy{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for _, tc := range []struct {
		name string
		prev time.Duration
		want time.Duration
	}{
		{"nothing waited yet", 0, 500 * time.Millisecond},
		{"negative is nothing", -time.Second, 500 * time.Millisecond},
		{"doubles", 500 * time.Millisecond, time.Second},
		{"below Min rises to Min", 100 * time.Millisecond, 500 * time.Millisecond},
		{"caps at Max", 20 * time.Second, 30 * time.Second},
		{"stays at Max", 30 * time.Second, 30 * time.Second},
		{"above Max comes down", time.Hour, 30 * time.Second},
		{"no overflow", math.MaxInt64, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Next(tc.prev); got != tc.want {
				t.Errorf("Next(%v) = %v, want %v", tc.prev, got, tc.want)
			}
		})
	}
}

func TestPolicyMinAboveMax(t *testing.T) {
	p := Policy{Min: time.Minute, Max: time.Second}
	for _, prev := range []time.Duration{0, time.Second, time.Hour} {
		if got := p.Next(prev); got != time.Second {
			t.Errorf("Next(%v) = %v, want Max (1s)", prev, got)
		}
	}
}

// TestNthMatchesNext: the delay before retry n is what n calls of Next
// hand out, so a caller counting attempts and one keeping the last delay
// wait the same.
func TestNthMatchesNext(t *testing.T) {
	for _, p := range []Policy{
		{Min: time.Second, Max: 10 * time.Second},
		{Min: 4 * time.Second, Max: 64 * time.Second},
		{Min: 3 * time.Millisecond, Max: 3 * time.Millisecond},
		{Min: 10 * time.Millisecond, Max: 5 * time.Second},
	} {
		b := Backoff{Policy: p}
		var got, want []time.Duration
		for n := 1; n <= 12; n++ {
			got = append(got, p.Nth(n))
			want = append(want, b.Next())
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%+v: Nth(1..12) differs from successive Next (-want +got):\n%s", p, diff)
		}
	}
}

func TestNth(t *testing.T) {
	p := Policy{Min: time.Second, Max: 10 * time.Second}
	var got []time.Duration
	for n := -1; n <= 6; n++ {
		got = append(got, p.Nth(n))
	}
	want := []time.Duration{time.Second, time.Second, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Nth(-1..6) (-want +got):\n%s", diff)
	}
	if got := p.Nth(math.MaxInt); got != 10*time.Second {
		t.Errorf("Nth(MaxInt) = %v, want 10s", got)
	}
}

func TestBackoffReset(t *testing.T) {
	b := New(10*time.Millisecond, 5*time.Second)
	var got []time.Duration
	for range 3 {
		got = append(got, b.Next())
	}
	if p := b.Peek(); p != 80*time.Millisecond {
		t.Errorf("Peek after three Next = %v, want 80ms", p)
	}
	b.Reset()
	if p := b.Peek(); p != 10*time.Millisecond {
		t.Errorf("Peek after Reset = %v, want Min (10ms)", p)
	}
	got = append(got, b.Next())
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 10 * time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Next, Next, Next, Reset, Next (-want +got):\n%s", diff)
	}
}
