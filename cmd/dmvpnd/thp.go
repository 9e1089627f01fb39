package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// disableTHP turns transparent huge pages off for this process
// (prctl PR_SET_THP_DISABLE, Linux 3.15+), before the heap grows.
//
// Where the kernel's THP mode is "always" (Debian's and RHEL's default
// kernels), khugepaged collapses any 2 MB range of the Go heap that holds
// a page in use into a huge page, filling in the pages the runtime's
// scavenger had returned to the kernel: a hub's RSS then creeps up while
// it is idle and allocates nothing, and a burst's memory is never given
// back (go.dev/issue/64332; the Go GC guide's "Linux transparent huge
// pages"). In the lab (docs/bench/README.md, "Idle memory"), 22.0 of the
// 23.5 MB of an idle 10k-spoke hub's anonymous memory were huge pages, and
// the 4.8 MB the scavenger released after a GC were resident again 30 s
// later. dmvpnd's heap is small and walked rarely: the TLB gain of huge
// pages does not pay for that. The flag is the process's own (the host's
// setting is left alone) and children inherit it.
func disableTHP() error {
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_THP_DISABLE: %w", err)
	}
	return nil
}
