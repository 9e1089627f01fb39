package kernel

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// scriptedSubscriptions plays one scripted subscription per call: it sends
// the updates and then either closes the channel (a socket error such as
// ENOBUFS) or waits for done, as the library does.
type scriptedSubscriptions struct {
	mu      sync.Mutex
	scripts [][]netlink.NeighUpdate
	opts    []netlink.NeighSubscribeOptions
}

// watchMisses starts k.WatchMisses until cancel or the end of the test.
func watchMisses(t *testing.T, k *Kernel) (misses <-chan Miss, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	misses, err := k.WatchMisses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return misses, cancel
}

func (s *scriptedSubscriptions) subscribe(ch chan<- netlink.NeighUpdate, done <-chan struct{}, opts netlink.NeighSubscribeOptions) error {
	s.mu.Lock()
	n := len(s.opts)
	s.opts = append(s.opts, opts)
	var script []netlink.NeighUpdate
	last := n >= len(s.scripts)-1
	if n < len(s.scripts) {
		script = s.scripts[n]
	}
	s.mu.Unlock()
	go func() {
		defer close(ch)
		for _, u := range script {
			select {
			case ch <- u:
			case <-done:
				return
			}
		}
		if last {
			<-done
		}
		// Otherwise: simulated receive error, the library closes ch.
	}()
	return nil
}

func upd(typ uint16, ifindex int, ip string, state int) netlink.NeighUpdate {
	return netlink.NeighUpdate{Type: typ, Neigh: netlink.Neigh{
		LinkIndex: ifindex, Family: unix.AF_INET, State: state, IP: net.ParseIP(ip).To4(),
	}}
}

func TestWatchMissesResubscribes(t *testing.T) {
	const tun = 7
	subs := &scriptedSubscriptions{scripts: [][]netlink.NeighUpdate{
		{
			upd(unix.RTM_GETNEIGH, tun, "10.0.0.2", unix.NUD_INCOMPLETE),
			upd(unix.RTM_GETNEIGH, 3, "192.0.2.1", unix.NUD_INCOMPLETE),  // other device
			upd(unix.RTM_NEWNEIGH, tun, "10.0.0.9", unix.NUD_REACHABLE),  // not a miss
			upd(unix.RTM_DELNEIGH, tun, "10.0.0.8", unix.NUD_INCOMPLETE), // deletion
			upd(unix.RTM_GETNEIGH, tun, "10.0.0.3", unix.NUD_PROBE),      // in use, aged
		},
		// After the overflow: the dump of existing entries finds a pending miss.
		{
			upd(unix.RTM_NEWNEIGH, tun, "10.0.0.9", unix.NUD_STALE),
			upd(unix.RTM_NEWNEIGH, tun, "10.0.0.4", unix.NUD_INCOMPLETE),
			upd(unix.RTM_GETNEIGH, tun, "10.0.0.5", unix.NUD_INCOMPLETE),
		},
	}}
	k := &Kernel{log: zap.NewNop(), subscribe: subs.subscribe, tunnel: tunnelRef{name: "gre1", ifindex: tun}}
	ch, cancel := watchMisses(t, k)
	var got []Miss
	deadline := time.After(5 * time.Second)
	for len(got) < 4 {
		select {
		case m := <-ch:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("timed out; got %v", got)
		}
	}
	want := []Miss{
		{netip.MustParseAddr("10.0.0.2"), NeighIncomplete},
		{netip.MustParseAddr("10.0.0.3"), NeighProbe},
		{netip.MustParseAddr("10.0.0.4"), NeighIncomplete},
		{netip.MustParseAddr("10.0.0.5"), NeighIncomplete},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("misses (-want +got):\n%s", d)
	}
	if r := k.Resubscribes(); r != 1 {
		t.Errorf("Resubscribes() = %d, want 1", r)
	}
	subs.mu.Lock()
	for i, o := range subs.opts {
		if !o.ListExisting {
			t.Errorf("subscription %d without ListExisting", i)
		}
	}
	subs.mu.Unlock()
	cancel()
	for range ch { // must close after cancel
	}
}

func TestWatchMissesNeedsTunnel(t *testing.T) {
	k := &Kernel{log: zap.NewNop()}
	if _, err := k.WatchMisses(context.Background()); err != ErrNoTunnel {
		t.Errorf("WatchMisses before EnsureTunnel = %v, want ErrNoTunnel", err)
	}
}
