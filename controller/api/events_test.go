package api_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
)

// TestBrokerNeverBlocks: a subscriber that does not read loses what does
// not fit its buffer, counted, while the publisher goes on.
func TestBrokerNeverBlocks(t *testing.T) {
	b := api.NewBroker(2, 3)
	slow := b.Subscribe()
	defer slow.Close()
	for i := range 5 {
		b.Publish(api.Event{Kind: api.EventRegistration, Count: uint64(i)})
	}
	if got := slow.TakeLost(); got != 3 {
		t.Errorf("lost = %d, want 3", got)
	}
	if got := slow.TakeLost(); got != 0 {
		t.Errorf("lost after take = %d, want 0", got)
	}
	if got := b.Lost(); got != 3 {
		t.Errorf("broker lost = %d, want 3", got)
	}
	var counts []uint64
	for _, e := range b.RecentEvents() {
		counts = append(counts, e.Count)
	}
	if diff := cmp.Diff([]uint64{2, 3, 4}, counts); diff != "" {
		t.Errorf("recent (-want +got):\n%s", diff)
	}
	if got := (<-slow.C()).Count; got != 0 {
		t.Errorf("first buffered = %d, want 0", got)
	}
}

// waitSubscribers polls until the fake has n subscribers.
func waitSubscribers(t *testing.T, f *apitest.Fake, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", f.Subscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEventStream: the client receives the events published after it
// subscribed, filtered by peer, and a lost-events marker when it lagged.
func TestEventStream(t *testing.T) {
	f := apitest.NewFake(apitest.Snapshot{})
	c, _ := serve(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	peer := netip.MustParseAddr("10.0.0.2")
	got := make(chan api.Event, 100)
	done := make(chan error, 1)
	block := make(chan struct{})
	opened := make(chan int, 1)
	go func() {
		// opened reports the subscription already made: no wait needed.
		done <- c.Events(ctx, peer, func() { opened <- f.Subscribers() }, func(ev api.Event) error {
			got <- ev
			if ev.Reason == "block" {
				<-block
			}
			return nil
		})
	}()
	select {
	case n := <-opened:
		if n != 1 {
			t.Fatalf("opened called with %d subscribers, want 1", n)
		}
	case err := <-done:
		t.Fatalf("Events ended before the stream opened: %v", err)
	}
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Events.Publish(api.Event{Time: at, Kind: api.EventRegistration, PeerTunnel: netip.MustParseAddr("10.0.0.3")})
	f.Events.Publish(api.Event{Time: at, Kind: api.EventRegistration, PeerTunnel: peer, Level: "info", Reason: "block"})
	if ev := <-got; ev.PeerTunnel != peer || !ev.Time.Equal(at) {
		t.Fatalf("first event %+v, want the one of %s", ev, peer)
	}
	// The client is stuck: the buffer (4) fills, later events are lost.
	for range 50 {
		f.Events.Publish(api.Event{Time: at, Kind: api.EventShortcutUp, NBMA: peer})
	}
	close(block)
	var lost uint64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case ev := <-got:
			if ev.Kind == api.EventLost {
				lost += ev.Count
			}
			if ev.Kind == api.EventSAUp {
				break wait
			}
		case <-tick.C: // until the stream has room again
			f.Events.Publish(api.Event{Time: at, Kind: api.EventSAUp, NBMA: peer})
		case <-deadline:
			t.Fatal("no sa-up after the stall")
		}
	}
	if lost == 0 {
		t.Errorf("no events-lost marker after a stall")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Events: %v", err)
	}
	waitSubscribers(t, f, 0)
	recent, err := c.RecentEvents(context.Background())
	if err != nil || len(recent) < 53 {
		t.Errorf("RecentEvents = %d events, %v; want at least 53", len(recent), err)
	}
}

// BenchmarkBrokerPublishFull is one event published to a broker whose
// recent list is full (a hub's burst of registrations publishes 10k).
func BenchmarkBrokerPublishFull(b *testing.B) {
	br := api.NewBroker(64, 1000)
	for i := range 1000 {
		br.Publish(api.Event{Kind: api.EventRegistration, Count: uint64(i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		br.Publish(api.Event{Kind: api.EventRegistration})
	}
}
