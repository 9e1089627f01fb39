package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func neigh(ifindex int, ip, ll string, state int) netlink.Neigh {
	n := netlink.Neigh{LinkIndex: ifindex, IP: net.ParseIP(ip).To4(), State: state}
	if ll != "" {
		n.LLIPAddr = net.ParseIP(ll).To4()
	}
	return n
}

func TestWatcherCounts(t *testing.T) {
	w := &watcher{ifindex: 7, prefix: netip.MustParsePrefix("10.0.0.0/17"), want: []int{2, 3},
		seen: map[netip.Addr]bool{}, res: result{ReachedNS: map[int]int64{}}}
	now := int64(0)
	step := func(typ uint16, n netlink.Neigh) {
		now++
		w.now = func() int64 { return now }
		w.update(netlink.NeighUpdate{Type: typ, Neigh: n})
	}
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.1.0", "100.64.1.0", netlink.NUD_PERMANENT)) // 1: counts
	step(unix.RTM_NEWNEIGH, neigh(8, "10.0.1.1", "100.64.1.1", netlink.NUD_PERMANENT)) // other device
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.200.1", "100.64.200.1", netlink.NUD_NOARP)) // outside the prefix
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.1.2", "", netlink.NUD_INCOMPLETE))          // no NBMA yet
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.1.0", "100.64.1.0", netlink.NUD_PERMANENT)) // again: no change
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.1.3", "100.64.1.3", netlink.NUD_NOARP))     // 6: second, reaches 2
	step(unix.RTM_DELNEIGH, neigh(7, "10.0.1.3", "100.64.1.3", netlink.NUD_NOARP))     // gone
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.1.4", "100.64.1.4", netlink.NUD_REACHABLE)) // 8: second again
	if w.finished() {
		t.Fatal("finished with 2 of 3")
	}
	step(unix.RTM_NEWNEIGH, neigh(7, "10.0.1.5", "100.64.1.5", netlink.NUD_STALE)) // 9: third
	if !w.finished() {
		t.Fatal("not finished with 3 of 3")
	}
	want := result{ReachedNS: map[int]int64{2: 6, 3: 9}, FirstNS: 1, LastNS: 9}
	if diff := cmp.Diff(want, w.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

// TestRunExecCPU: the -exec command's CPU includes what the shell ran
// and waited for (the floor's ip runs under /bin/sh -c), and a failing
// command reports its output.
func TestRunExecCPU(t *testing.T) {
	// The work is a grandchild's: sh -c runs sh, then true.
	cpu, err := runExec(`sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'; true`)
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 {
		t.Errorf("CPU of a shell loop in a grandchild: %v, want > 0", cpu)
	}
	if _, err := runExec("echo refused >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("failing command: error %v, want its output", err)
	}
}
