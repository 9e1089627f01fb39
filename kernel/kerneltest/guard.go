package kerneltest

import (
	"net/netip"
	"sync"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// Guard is an in-memory kernel.GREGuard: it records what is installed and
// returns the counters a test sets.
type Guard struct {
	mu        sync.Mutex
	installed bool
	local     netip.Addr
	counters  kernel.GuardCounters
	calls     []string
}

// Install records the guard for local; counters restart, as in the kernel.
func (g *Guard) Install(local netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.installed, g.local, g.counters = true, local, kernel.GuardCounters{}
	g.calls = append(g.calls, "install "+local.String())
	return nil
}

// Remove records the removal; removing a missing guard is not an error.
func (g *Guard) Remove() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.installed, g.local = false, netip.Addr{}
	g.calls = append(g.calls, "remove")
	return nil
}

// Counters returns the counters set by SetCounters since the last Install.
func (g *Guard) Counters() (kernel.GuardCounters, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counters, nil
}

// SetCounters stands for packets the kernel dropped.
func (g *Guard) SetCounters(c kernel.GuardCounters) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counters = c
}

// Installed reports whether the guard is installed and for which address.
func (g *Guard) Installed() (bool, netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.installed, g.local
}

// Calls lists Install and Remove calls in order.
func (g *Guard) Calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}
