package routingtest_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/dmvpnd/dmvpnd/routing/routingtest"
	"github.com/google/go-cmp/cmp"
)

func TestSink(t *testing.T) {
	ctx := t.Context()
	s := routingtest.NewSink()
	r1 := routing.Route{Prefix: netip.MustParsePrefix("192.168.3.0/24"), Via: netip.MustParseAddr("10.0.0.13"), Metric: 20}
	r2 := routing.Route{Prefix: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.12"), Metric: 20}
	done := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() { done <- s.WaitFor(wctx, func(rs []routing.Route) bool { return len(rs) == 2 }) }()
	s.SetRoutes([]routing.Route{r1, r2})
	if err := <-done; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	want := "192.168.2.0/24 via 10.0.0.12 metric 20\n192.168.3.0/24 via 10.0.0.13 metric 20\n"
	if diff := cmp.Diff(want, s.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{want}, s.History()); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if s.Calls() != 1 {
		t.Errorf("calls = %d", s.Calls())
	}
	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if err := s.WaitText(short, "never\n"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitText of an unreachable state: %v", err)
	}
}

func TestSpeaker(t *testing.T) {
	ctx := t.Context()
	sink := routingtest.NewSink()
	sp := routingtest.NewSpeaker(sink)
	if err := sp.SetPrefixes(ctx, nil); !errors.Is(err, routing.ErrNotRunning) {
		t.Errorf("SetPrefixes before Start: %v", err)
	}
	sp.FailStart(errors.New("boom"))
	if err := sp.Start(ctx); err == nil {
		t.Error("FailStart ignored")
	}
	if err := sp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	if err := sp.SetPrefixes(ctx, p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, sp.Prefixes(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
	n := []routing.NeighborSummary{{Neighbor: netip.MustParseAddr("10.0.0.1"), AS: 65000, State: routing.StateEstablished}}
	sp.SetNeighbors(n)
	got, err := sp.Summary(ctx)
	if err != nil || len(got) != 1 || got[0].State != routing.StateEstablished {
		t.Errorf("Summary = %v, %v", got, err)
	}
	sp.Learn([]routing.Route{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.1")}})
	if want := "0.0.0.0/0 via 10.0.0.1 metric 0\n"; sink.String() != want {
		t.Errorf("sink = %q, want %q", sink.String(), want)
	}
	if err := sp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if running, starts := sp.Running(); running || starts != 1 {
		t.Errorf("Running = %v, %d", running, starts)
	}
}
