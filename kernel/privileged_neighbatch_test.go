package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// TestPrivNeighborBatchRefusal sends one transaction whose middle item
// names a device that no longer exists: the kernel refuses that one item
// (ENODEV) and applies every other.
func TestPrivNeighborBatchRefusal(t *testing.T) {
	node := singleTunnel(t)
	h, k, ifindex := node.h, node.k, node.idx
	if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "gone0"}}); err != nil {
		t.Fatal(err)
	}
	gone, err := h.LinkByName("gone0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(gone); err != nil {
		t.Fatal(err)
	}
	// Refused in the middle and last: only the last message asks for an
	// acknowledgement, so the last one's error must count as its answer.
	const n, refused, lastRefused = 11, 5, 10
	items := make([]neighItem, n)
	for i := range items {
		items[i] = neighItem{ifindex: ifindex, op: NeighborOp{Addr: addrN(i), NBMA: netip.AddrFrom4([4]byte{172, 20, 0, byte(i)}), Permanent: i%2 == 0}}
	}
	items[refused].ifindex = gone.Attrs().Index
	items[lastRefused].ifindex = gone.Attrs().Index
	errs := make([]error, n)
	applyItems(k, items, errs)
	for i, err := range errs {
		if i == refused || i == lastRefused {
			if !errors.Is(err, syscall.ENODEV) {
				t.Errorf("item %d (vanished device): %v, want ENODEV", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	var want []Neighbor
	for i, it := range items {
		if i != refused && i != lastRefused {
			want = append(want, Neighbor{Addr: it.op.Addr, NBMA: it.op.NBMA, State: neighState(it.op.Permanent)})
		}
	}
	got, err := k.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fmtNeighbors(want), fmtNeighbors(got)); d != "" {
		t.Errorf("neighbors (-want +got):\n%s", d)
	}

	// Through the public API: a changed lladdr, a delete, the delete of a
	// missing entry and an unchanged entry in one batch.
	ops := []NeighborOp{
		{Addr: addrN(0), NBMA: netip.MustParseAddr("172.20.1.0"), Permanent: true},
		{Addr: addrN(1), Delete: true},
		{Addr: addrN(refused), Delete: true},
		{Addr: addrN(2), NBMA: items[2].op.NBMA, Permanent: true},
	}
	for i, err := range k.ApplyNeighbors(ops) {
		if err != nil {
			t.Errorf("op %d (%s): %v", i, ops[i], err)
		}
	}
	want[0].NBMA = ops[0].NBMA
	want = append(want[:1], want[2:]...)
	got, err = k.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fmtNeighbors(want), fmtNeighbors(got)); d != "" {
		t.Errorf("after the second batch (-want +got):\n%s", d)
	}
}

// TestPrivNeighborBatchScale measures installing N permanent neighbors one
// netlink request at a time against batches, and checks that both leave
// exactly N entries.
func TestPrivNeighborBatchScale(t *testing.T) {
	k := singleTunnel(t).k
	for _, n := range []int{1000, 10000} {
		ops := make([]NeighborOp, n)
		for i := range ops {
			ops[i] = NeighborOp{Addr: netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), NBMA: netip.AddrFrom4([4]byte{172, 21, byte(i >> 8), byte(i)}), Permanent: true}
		}
		check := func(what string) {
			t.Helper()
			got, err := k.ListNeighbors()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("%s: %d neighbors, want %d", what, len(got), n)
			}
		}
		clear := func() {
			t.Helper()
			del := make([]NeighborOp, n)
			for i, o := range ops {
				del[i] = NeighborOp{Addr: o.Addr, Delete: true}
			}
			for i, err := range k.ApplyNeighbors(del) {
				if err != nil {
					t.Fatalf("delete %s: %v", del[i].Addr, err)
				}
			}
			if got, err := k.ListNeighbors(); err != nil || len(got) != 0 {
				t.Fatalf("after delete: %d neighbors, %v", len(got), err)
			}
		}
		start := time.Now()
		for _, o := range ops {
			if err := k.ReplaceNeighbor(o.Addr, o.NBMA, o.Permanent); err != nil {
				t.Fatal(err)
			}
		}
		single := time.Since(start)
		check("one by one")
		clear()
		start = time.Now()
		for i, err := range k.ApplyNeighbors(ops) {
			if err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
		}
		batched := time.Since(start)
		check("batched")
		// What a resync with nothing to change costs now: one dump.
		start = time.Now()
		seen := 0
		if err := k.WalkNeighbors(func(nb Neighbor) {
			if i := int(nb.Addr.As4()[2])<<8 | int(nb.Addr.As4()[3]); i < n && nb == (Neighbor{Addr: ops[i].Addr, NBMA: ops[i].NBMA, State: NeighPermanent}) {
				seen++
			}
		}); err != nil {
			t.Fatal(err)
		}
		walk := time.Since(start)
		if seen != n {
			t.Fatalf("the dump saw %d of the %d entries", seen, n)
		}
		if a := testing.AllocsPerRun(3, func() { _ = k.WalkNeighbors(func(Neighbor) {}) }); a > 0 {
			t.Errorf("a dump of %d entries allocates %.0f times, want none", n, a)
		}
		start = time.Now()
		for i, err := range k.ApplyNeighbors(ops) {
			if err != nil {
				t.Fatalf("rewrite op %d: %v", i, err)
			}
		}
		rewrite := time.Since(start)
		clear()
		t.Logf("%s", fmt.Sprintf("%d permanent neighbors: one by one %s (%s each), batched %s (%s each, %.1fx faster); batched rewrite of unchanged entries %s; one dump %s",
			n, single.Round(time.Millisecond), single/time.Duration(n), batched.Round(time.Millisecond), batched/time.Duration(n),
			float64(single)/float64(batched), rewrite.Round(time.Millisecond), walk.Round(time.Millisecond)))
	}
}

// TestPrivMissWatchIgnoresOwnWrites: the miss watch does not hear the
// notifications of the batch socket's writes (neighSubscribe's filter),
// but hears a change made through another socket. Notifications reach the
// watch in the order the kernel sent them, so once the foreign change is
// counted every batch write before it would have been counted too.
func TestPrivMissWatchIgnoresOwnWrites(t *testing.T) {
	node := singleTunnel(t)
	h, k, ifindex := node.h, node.k, node.idx
	watchMisses(t, k)
	var gen0 uint64
	waitFor(t, "the watch running", 5*time.Second, func() (bool, error) {
		var ok bool
		gen0, ok = k.NeighborChanges()
		return ok, nil
	})
	const n = 64
	ops := make([]NeighborOp, n)
	for i := range ops {
		ops[i] = NeighborOp{Addr: addrN(i), NBMA: netip.AddrFrom4([4]byte{172, 20, 0, byte(i)}), Permanent: true}
	}
	for i, err := range k.ApplyNeighbors(ops) {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	foreign := &netlink.Neigh{LinkIndex: ifindex, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: addrN(n).AsSlice(), LLIPAddr: netip.MustParseAddr("172.20.1.1").AsSlice()}
	if err := h.NeighSet(foreign); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the foreign change counted", 5*time.Second, func() (bool, error) {
		gen, _ := k.NeighborChanges()
		return gen != gen0, nil
	})
	if gen, _ := k.NeighborChanges(); gen != gen0+1 {
		t.Errorf("NeighborChanges moved by %d after %d batch writes and one foreign change, want 1", gen-gen0, n)
	}
	// The batch writes are in the kernel: the filter hid them, it did not
	// lose them.
	got, err := k.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Errorf("%d neighbour entries on the tunnel, want %d", len(got), n+1)
	}
}
