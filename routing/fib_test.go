package routing_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/dmvpnd/dmvpnd/routing/routingtest"
	"github.com/google/go-cmp/cmp"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func upd(p, nh string) routing.PathUpdate {
	return routing.PathUpdate{Prefix: pfx(p), NextHop: addr(nh)}
}

func wd(p string) routing.PathUpdate {
	return routing.PathUpdate{Prefix: pfx(p), Withdraw: true}
}

// runFIB starts f.Run in the bubble and returns a stop function.
func runFIB(t *testing.T, f *routing.FIB) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}
}

func TestFIBReconcile(t *testing.T) {
	own := []netip.Prefix{pfx("192.168.1.0/24")}
	ownAddrs := []netip.Addr{addr("10.0.0.11")}
	tests := []struct {
		name    string
		batches [][]routing.PathUpdate
		want    string
	}{
		{
			name:    "empty initial dump",
			batches: [][]routing.PathUpdate{{}},
			want:    "",
		},
		{
			name: "spoke routes keep spoke next hops",
			batches: [][]routing.PathUpdate{{
				upd("192.168.2.0/24", "10.0.0.12"),
				upd("192.168.3.0/24", "10.0.0.13"),
				upd("192.168.0.0/24", "10.0.0.1"),
			}},
			want: "192.168.0.0/24 via 10.0.0.1 table 100 metric 20\n" +
				"192.168.2.0/24 via 10.0.0.12 table 100 metric 20\n" +
				"192.168.3.0/24 via 10.0.0.13 table 100 metric 20\n",
		},
		{
			name: "own prefix, own next hop and local paths are skipped",
			batches: [][]routing.PathUpdate{{
				upd("192.168.1.0/24", "10.0.0.1"),  // own LAN reflected back
				upd("172.16.0.0/16", "10.0.0.11"),  // our own next hop
				upd("172.17.0.0/16", "0.0.0.0"),    // locally originated
				upd("192.168.2.0/24", "10.0.0.12"), // kept
			}},
			want: "192.168.2.0/24 via 10.0.0.12 table 100 metric 20\n",
		},
		{
			name: "withdraw removes, best path change replaces",
			batches: [][]routing.PathUpdate{
				{upd("192.168.2.0/24", "10.0.0.12"), upd("192.168.3.0/24", "10.0.0.13")},
				{wd("192.168.2.0/24"), upd("192.168.3.0/24", "10.0.0.2")},
			},
			want: "192.168.3.0/24 via 10.0.0.2 table 100 metric 20\n",
		},
		{
			name: "withdraw of unknown prefix is harmless",
			batches: [][]routing.PathUpdate{
				{wd("192.168.9.0/24")},
				{upd("0.0.0.0/0", "10.0.0.1")},
			},
			want: "0.0.0.0/0 via 10.0.0.1 table 100 metric 20\n",
		},
		{
			name: "later update in one batch wins",
			batches: [][]routing.PathUpdate{{
				upd("192.168.2.0/24", "10.0.0.12"), wd("192.168.2.0/24"), upd("192.168.2.0/24", "10.0.0.22"),
			}},
			want: "192.168.2.0/24 via 10.0.0.22 table 100 metric 20\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sink := routingtest.NewSink()
				f := routing.NewFIB(sink, routing.FIBOptions{Table: 100})
				f.SetOwn(own, ownAddrs)
				stop := runFIB(t, f)
				defer stop()
				for _, b := range tt.batches {
					f.Apply(b)
					time.Sleep(time.Second) // fake time: lets the debounce expire
					synctest.Wait()
				}
				if diff := cmp.Diff(tt.want, sink.String()); diff != "" {
					t.Errorf("sink routes (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.want, routingtest.Render(f.Routes())); diff != "" {
					t.Errorf("FIB.Routes (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestFIBSetOwnFiltersLearnedRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := routingtest.NewSink()
		f := routing.NewFIB(sink, routing.FIBOptions{})
		defer runFIB(t, f)()
		f.Apply([]routing.PathUpdate{upd("192.168.2.0/24", "10.0.0.12"), upd("192.168.5.0/24", "10.0.0.12")})
		time.Sleep(time.Second)
		synctest.Wait()
		// The node now originates 192.168.5.0/24 itself (reload).
		f.SetOwn([]netip.Prefix{pfx("192.168.5.0/24")}, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		want := "192.168.2.0/24 via 10.0.0.12 table 0 metric 20\n"
		if diff := cmp.Diff(want, sink.String()); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
	})
}

func TestFIBBatchesChangesWithinDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := routingtest.NewSink()
		f := routing.NewFIB(sink, routing.FIBOptions{Debounce: 100 * time.Millisecond})
		defer runFIB(t, f)()
		for i := range 50 {
			f.Apply([]routing.PathUpdate{{
				Prefix:  netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24),
				NextHop: addr("10.0.0.12"),
			}})
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := len(sink.Routes()); got != 50 {
			t.Fatalf("sink has %d routes, want 50", got)
		}
		if got := sink.Calls(); got != 1 {
			t.Errorf("SetRoutes called %d times, want 1 batched call", got)
		}
		// Nothing changed: a kick without change (Apply of an empty batch is
		// a change of generation, Resync too) must not be needed to stay synced.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := sink.Calls(); got != 1 {
			t.Errorf("SetRoutes called %d times while idle, want 1", got)
		}
	})
}

// timedSink records when it is called.
type timedSink struct {
	*routingtest.Sink
	start time.Time
	at    []time.Duration
}

func (s *timedSink) SetRoutes(ctx context.Context, rs []routing.Route) error {
	s.at = append(s.at, time.Since(s.start))
	return s.Sink.SetRoutes(ctx, rs)
}

func TestFIBRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &timedSink{Sink: routingtest.NewSink(), start: time.Now()}
		sink.FailNext(4, nil)
		f := routing.NewFIB(sink, routing.FIBOptions{
			Debounce:   10 * time.Millisecond,
			MinBackoff: 100 * time.Millisecond,
			MaxBackoff: 300 * time.Millisecond,
		})
		defer runFIB(t, f)()
		f.Apply([]routing.PathUpdate{upd("192.168.2.0/24", "10.0.0.12")})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		ms := time.Millisecond
		// debounce, then 100, 200, 300 (capped), 300 ms apart.
		want := []time.Duration{10 * ms, 110 * ms, 310 * ms, 610 * ms, 910 * ms}
		if diff := cmp.Diff(want, sink.at); diff != "" {
			t.Errorf("call times (-want +got):\n%s", diff)
		}
		st := f.Stats()
		if st.Failures != 4 || st.Syncs != 1 || st.LastError != "" || st.Routes != 1 {
			t.Errorf("stats = %+v, want 4 failures, 1 sync, no error, 1 route", st)
		}
		if want := "192.168.2.0/24 via 10.0.0.12 table 0 metric 20\n"; sink.String() != want {
			t.Errorf("routes = %q, want %q", sink.String(), want)
		}
	})
}

func TestFIBUpdatesDuringBackoffAreNotLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := routingtest.NewSink()
		sink.FailNext(1, nil)
		f := routing.NewFIB(sink, routing.FIBOptions{MinBackoff: time.Second})
		defer runFIB(t, f)()
		f.Apply([]routing.PathUpdate{upd("192.168.2.0/24", "10.0.0.12")})
		time.Sleep(500 * time.Millisecond) // first call failed, now backing off
		synctest.Wait()
		f.Apply([]routing.PathUpdate{upd("192.168.3.0/24", "10.0.0.13")})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		want := "192.168.2.0/24 via 10.0.0.12 table 0 metric 20\n192.168.3.0/24 via 10.0.0.13 table 0 metric 20\n"
		if diff := cmp.Diff(want, sink.String()); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
	})
}

// TestFIBConvergesInAnyOrder replays the same final state reached through
// shuffled update orders: the sink must always end with the same routes.
func TestFIBConvergesInAnyOrder(t *testing.T) {
	final := map[string]string{
		"192.168.2.0/24": "10.0.0.12",
		"192.168.3.0/24": "10.0.0.13",
		"10.10.0.0/16":   "10.0.0.1",
	}
	withdrawn := []string{"192.168.4.0/24", "192.168.5.0/24"}
	var want string
	for seed := range uint64(20) {
		var ups []routing.PathUpdate
		for p, nh := range final {
			ups = append(ups, upd(p, "10.0.0.99"), upd(p, nh)) // stale first, final later
		}
		for _, p := range withdrawn {
			ups = append(ups, upd(p, "10.0.0.14"), wd(p))
		}
		// Shuffle while keeping each prefix's own order: shuffle pairs.
		r := rand.New(rand.NewPCG(seed, 7))
		pairs := make([][2]routing.PathUpdate, 0, len(ups)/2)
		for i := 0; i < len(ups); i += 2 {
			pairs = append(pairs, [2]routing.PathUpdate{ups[i], ups[i+1]})
		}
		r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		var got string
		synctest.Test(t, func(t *testing.T) {
			sink := routingtest.NewSink()
			f := routing.NewFIB(sink, routing.FIBOptions{})
			defer runFIB(t, f)()
			for _, p := range pairs {
				f.Apply([]routing.PathUpdate{p[0]})
				time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
			}
			for _, p := range pairs {
				f.Apply([]routing.PathUpdate{p[1]})
				time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			got = sink.String()
		})
		if seed == 0 {
			want = got
			if want == "" {
				t.Fatal("no routes after first replay")
			}
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("seed %d (-want +got):\n%s", seed, diff)
		}
	}
	if want != "10.10.0.0/16 via 10.0.0.1 table 0 metric 20\n192.168.2.0/24 via 10.0.0.12 table 0 metric 20\n192.168.3.0/24 via 10.0.0.13 table 0 metric 20\n" {
		t.Errorf("converged state = %q", want)
	}
}
