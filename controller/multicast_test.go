package controller

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// fakeCapture is the kernel's multicast capture: Inject stands for a
// packet a routing protocol sent into the tunnel. Each step can be made to
// fail.
type fakeCapture struct {
	mu                     sync.Mutex
	calls                  []string
	ch                     chan []byte
	installErr, packetsErr error
}

func (f *fakeCapture) Install(ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.installErr != nil {
		return f.installErr
	}
	f.calls = append(f.calls, "install")
	return nil
}

func (f *fakeCapture) Remove() error {
	record(&f.mu, &f.calls, "remove")
	return nil
}

func (f *fakeCapture) Packets(context.Context) (<-chan []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.packetsErr != nil {
		return nil, f.packetsErr
	}
	f.ch = make(chan []byte, 8)
	return f.ch, nil
}

func (f *fakeCapture) Inject(pkt []byte) { f.ch <- pkt }

func (f *fakeCapture) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// copySender records the copies the replicator sends, under a lock (the
// replicator runs on its own goroutine).
type copySender struct {
	mu     sync.Mutex
	sends  [][]netip.Addr
	closed bool
}

func (s *copySender) Send(_ []byte, nbmas []netip.Addr) (int, error) {
	record(&s.mu, &s.sends, slices.Clone(nbmas))
	return len(nbmas), nil
}

func (s *copySender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// last returns the destinations of the latest Send.
func (s *copySender) last() []netip.Addr {
	l, _ := latest(&s.mu, &s.sends)
	return l
}

func (s *copySender) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// withMulticast hands the node a capture and a sender.
func withMulticast(capt *fakeCapture, send *copySender) func(*Deps) {
	return func(d *Deps) {
		d.Multicast = capt
		d.ListenMulticast = func(int) (MulticastSender, error) { return send, nil }
	}
}

const mcastHubYAML = `
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: 10.0.0.1/24}
nhrp:
  role: hub
  network_id: 1
  holding_time: 600s
  multicast: {dynamic: true, static: [198.51.100.50]}
`

// TestMulticastFollowsRegistrations: a hub with nhrp.multicast dynamic
// copies each captured packet to every registered spoke and the static
// targets; a spoke whose registration expires gets no more copies; the
// counters show in show counters and in metrics, and stopping removes the
// capture.
func TestMulticastFollowsRegistrations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		capt, send := &fakeCapture{}, &copySender{}
		hub := start(t, netw, "hub", mcastHubYAML, nil, withMulticast(capt, send))
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil)
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"), nil)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if d := cmp.Diff([]string{"install"}, capt.Calls()); d != "" {
			t.Fatalf("capture calls (-want +got):\n%s", d)
		}

		capt.Inject(ipv4Packet("10.0.0.1", "224.0.0.5"))
		synctest.Wait()
		want := addrs("198.51.100.2", "198.51.100.3", "198.51.100.50")
		if d := cmp.Diff(want, send.last(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("copies of the first packet (-want +got):\n%s", d)
		}
		got, err := hub.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]uint64{"multicast_packets": 1, "multicast_copies": 3,
			"multicast_copies_to_198.51.100.2": 1, "multicast_rate_limited": 0} {
			if got[k] != v {
				t.Errorf("show counters %s = %d, want %d", k, got[k], v)
			}
		}
		wantMetrics := `
# HELP dmvpnd_multicast_packets_total Multicast replication: packets captured, copies sent, copies refused by the per-peer rate limit or the kernel, packets without target.
# TYPE dmvpnd_multicast_packets_total counter
dmvpnd_multicast_packets_total{result="captured"} 1
dmvpnd_multicast_packets_total{result="copied"} 3
dmvpnd_multicast_packets_total{result="no_target"} 0
dmvpnd_multicast_packets_total{result="rate_limited"} 0
dmvpnd_multicast_packets_total{result="send_error"} 0
`
		if err := testutil.GatherAndCompare(hub.m.Registry(), strings.NewReader(wantMetrics), "dmvpnd_multicast_packets_total"); err != nil {
			t.Error(err)
		}

		// s2 stops without deregistering: once its registration expires
		// it gets no more copies.
		s2.stop(t)
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		capt.Inject(ipv4Packet("10.0.0.1", "224.0.0.5"))
		synctest.Wait()
		want = addrs("198.51.100.2", "198.51.100.50")
		if d := cmp.Diff(want, send.last(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("copies after s2's registration expired (-want +got):\n%s", d)
		}

		stopAll(t, s1, hub)
		if d := cmp.Diff([]string{"install", "remove"}, capt.Calls()); d != "" {
			t.Errorf("capture calls after stop (-want +got):\n%s", d)
		}
		if !send.isClosed() {
			t.Error("multicast socket left open after stop")
		}
	})
}

// TestMulticastStartFailures: a hub whose multicast socket, capture rule
// or capture source cannot be opened does not run, and closes or removes
// what it had opened.
func TestMulticastStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		capt       *fakeCapture
		listenErr  error
		wantCalls  []string
		wantClosed bool
	}{
		{name: "socket", capt: &fakeCapture{}, listenErr: errInjected},
		{name: "capture rule", capt: &fakeCapture{installErr: errInjected}, wantClosed: true},
		{name: "capture source", capt: &fakeCapture{packetsErr: errInjected}, wantCalls: []string{"install", "remove"}, wantClosed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				send := &copySender{}
				n := start(t, kerneltest.NewNetwork(), "hub", mcastHubYAML, nil, withMulticast(tc.capt, send), func(d *Deps) {
					if tc.listenErr != nil {
						d.ListenMulticast = func(int) (MulticastSender, error) { return nil, tc.listenErr }
					}
				})
				err := <-n.done
				n.cancel()
				if !errors.Is(err, errInjected) {
					t.Errorf("Run = %v; want the injected failure", err)
				}
				if d := cmp.Diff(tc.wantCalls, tc.capt.Calls()); d != "" {
					t.Errorf("capture calls (-want +got):\n%s", d)
				}
				if send.isClosed() != tc.wantClosed {
					t.Errorf("multicast socket closed = %v, want %v", send.isClosed(), tc.wantClosed)
				}
			})
		})
	}
}

// TestMulticastRecomputeAllocations: recomputing the target set of a hub
// whose registrations did not change (every resync marks it dirty)
// allocates nothing, whatever the number of spokes.
func TestMulticastRecomputeAllocations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var allocs []float64
		for _, n := range []int{100, 2000} {
			capt, send := &fakeCapture{}, &copySender{}
			yaml := strings.Replace(bigHubYAML(n), "}}", "}, multicast: {dynamic: true}}", 1)
			hub := start(t, kerneltest.NewNetwork(), "hub", yaml, nil, withMulticast(capt, send))
			time.Sleep(time.Second)
			synctest.Wait()
			registerSpokes(t, hub, n)
			c := hub.ctl
			recompute := func() {
				c.mcast.dirty, c.mcast.last = true, time.Time{}
				c.reconcileMulticast()
			}
			if err := c.run(context.Background(), func() {
				recompute() // publishes the n spokes
				if got := len(c.mcast.cur); got != n {
					t.Errorf("%d multicast targets for %d registered spokes", got, n)
				}
				allocs = append(allocs, testing.AllocsPerRun(5, recompute))
			}); err != nil {
				t.Fatal(err)
			}
			stopAll(t, hub)
		}
		if allocs[0] != 0 || allocs[1] != 0 {
			t.Errorf("allocations per unchanged recompute: %v for 100 and 2000 spokes, want 0", allocs)
		}
	})
}
