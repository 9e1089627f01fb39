package kerneltest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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
	bind      kernel.SourceBinding
	bound     []kernel.BoundSource
	sets      int
}

// Install records the guard for local; counters restart, as in the kernel,
// and bound sources are kept while the binding stays on.
func (g *Guard) Install(local netip.Addr, bind kernel.SourceBinding) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.installed, g.local, g.counters, g.bind = true, local, kernel.GuardCounters{}, bind
	call := "install " + local.String()
	if bind.Enabled() {
		call += fmt.Sprintf(" bind %s key %d", bind.Prefix, bind.Key)
	} else {
		g.bound = nil
	}
	g.calls = append(g.calls, call)
	return nil
}

// SetBoundSources replaces the binding set, as the kernel guard does; it
// fails when no binding is installed.
func (g *Guard) SetBoundSources(want []kernel.BoundSource) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.installed || !g.bind.Enabled() {
		return errors.New("kerneltest: the tunnel-source binding is not installed")
	}
	g.sets++
	g.bound = slices.Clone(want)
	slices.SortFunc(g.bound, func(a, b kernel.BoundSource) int {
		if c := a.NBMA.Compare(b.NBMA); c != 0 {
			return c
		}
		return a.Tunnel.Compare(b.Tunnel)
	})
	g.bound = slices.Compact(g.bound)
	return nil
}

// InvalidateBoundSources is a no-op: the fake's set is its own.
func (g *Guard) InvalidateBoundSources() {}

// BoundText renders the binding set, one "nbma . tunnel" line each, sorted,
// and how many SetBoundSources calls were made.
func (g *Guard) BoundText() (string, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b strings.Builder
	for _, s := range g.bound {
		b.WriteString(s.String() + "\n")
	}
	return b.String(), g.sets
}

// Remove records the removal; removing a missing guard is not an error.
func (g *Guard) Remove() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.installed, g.local, g.bind, g.bound = false, netip.Addr{}, kernel.SourceBinding{}, nil
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
