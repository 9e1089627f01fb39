package routingtest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"

	"github.com/dmvpnd/dmvpnd/routing"
)

// Speaker is a fake of routing.Speaker's control surface (Start, Stop,
// SetPrefixes, Summary) for controller tests. Learn plays the role of the
// FIB: it pushes routes to the sink the speaker was built with.
type Speaker struct {
	mu        sync.Mutex
	sink      routing.RouteSink
	running   bool
	starts    int
	prefixes  []netip.Prefix
	neighbors []routing.NeighborSummary
	startErr  error
}

// NewSpeaker returns a stopped fake speaker that pushes learned routes to sink.
func NewSpeaker(sink routing.RouteSink) *Speaker {
	return &Speaker{sink: sink}
}

// FailStart makes the next Start return err.
func (s *Speaker) FailStart(err error) {
	s.mu.Lock()
	s.startErr = err
	s.mu.Unlock()
}

// Start implements the speaker's Start.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startErr; err != nil {
		s.startErr = nil
		return err
	}
	if s.running {
		return errors.New("routingtest: speaker already started")
	}
	s.running = true
	s.starts++
	return nil
}

// Stop implements the speaker's Stop.
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = false
	return nil
}

// SetPrefixes implements the speaker's SetPrefixes.
func (s *Speaker) SetPrefixes(ctx context.Context, desired []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return routing.ErrNotRunning
	}
	s.prefixes = slices.Clone(desired)
	return nil
}

// Summary implements the speaker's Summary.
func (s *Speaker) Summary(ctx context.Context) ([]routing.NeighborSummary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil, routing.ErrNotRunning
	}
	return slices.Clone(s.neighbors), nil
}

// SetNeighbors sets what Summary returns.
func (s *Speaker) SetNeighbors(n []routing.NeighborSummary) {
	s.mu.Lock()
	s.neighbors = slices.Clone(n)
	s.mu.Unlock()
}

// Prefixes returns the prefixes last passed to SetPrefixes.
func (s *Speaker) Prefixes() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.prefixes)
}

// Running reports whether the fake is started, and how often it was.
func (s *Speaker) Running() (running bool, starts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, s.starts
}

// Learn pushes routes to the sink as the FIB would after best-path changes.
func (s *Speaker) Learn(routes []routing.Route) {
	rs := slices.Clone(routes)
	routing.SortRoutes(rs)
	s.sink.SetRoutes(rs)
}
