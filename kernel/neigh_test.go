package kernel

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// TestNeighborChangesFollowTheWatch: the generation moves once per
// notification about one of the tunnel's entries (not for misses, not for
// other devices) and when the watch starts or stops; it is usable only
// while the watch runs.
func TestNeighborChangesFollowTheWatch(t *testing.T) {
	const tun = 7
	subs := &scriptedSubscriptions{scripts: [][]netlink.NeighUpdate{{
		upd(unix.RTM_NEWNEIGH, 3, "192.0.2.1", unix.NUD_PERMANENT),   // other device
		upd(unix.RTM_GETNEIGH, tun, "10.0.0.2", unix.NUD_INCOMPLETE), // a miss, no change
		upd(unix.RTM_NEWNEIGH, tun, "10.0.0.3", unix.NUD_PERMANENT),  // changed
		upd(unix.RTM_DELNEIGH, tun, "10.0.0.4", unix.NUD_PERMANENT),  // removed
		upd(unix.RTM_GETNEIGH, tun, "10.0.0.9", unix.NUD_INCOMPLETE), // marker
	}}}
	k := &Kernel{log: zap.NewNop(), subscribe: subs.subscribe, tunnel: tunnelRef{name: "gre1", ifindex: tun}}
	if _, ok := k.NeighborChanges(); ok {
		t.Fatal("NeighborChanges usable before WatchMisses")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := k.WatchMisses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for marker := false; !marker; {
		select {
		case m := <-ch:
			marker = m.Addr == netip.MustParseAddr("10.0.0.9")
		case <-deadline:
			t.Fatal("no marker miss")
		}
	}
	// 1 for the watch's start, 2 for the tunnel's changes.
	if gen, ok := k.NeighborChanges(); !ok || gen != 3 {
		t.Errorf("NeighborChanges() = %d, %t; want 3, true", gen, ok)
	}
	cancel()
	for range ch { // closed once the watch stopped
	}
	if gen, ok := k.NeighborChanges(); ok || gen != 4 {
		t.Errorf("after the watch: NeighborChanges() = %d, %t; want 4, false", gen, ok)
	}
}
