// Package routingtest provides fakes for code that uses package routing.
package routingtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dmvpnd/dmvpnd/routing"
)

// Sink is a fake routing.RouteSink. It keeps the last route set, renders it
// as sorted "ip route"-like text, and lets a test wait for a state.
type Sink struct {
	mu      sync.Mutex
	routes  []routing.Route
	history []string // every accepted set, rendered
	calls   int
	changed chan struct{} // closed and replaced on every call
}

// NewSink returns an empty sink.
func NewSink() *Sink {
	return &Sink{changed: make(chan struct{})}
}

// SetRoutes implements routing.RouteSink.
func (s *Sink) SetRoutes(routes []routing.Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.routes = slices.Clone(routes)
	s.history = append(s.history, Render(routes))
	close(s.changed)
	s.changed = make(chan struct{})
}

// Routes returns the last accepted route set.
func (s *Sink) Routes() []routing.Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.routes)
}

// History returns every route set accepted so far, oldest first, each
// rendered as String does: a test shows with it that a route was never
// withdrawn in between.
func (s *Sink) History() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history)
}

// Calls returns how many times SetRoutes was called.
func (s *Sink) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// String renders the accepted routes one per line, sorted.
func (s *Sink) String() string {
	return Render(s.Routes())
}

// Render renders routes one per line, sorted, like "ip route" output.
func Render(routes []routing.Route) string {
	lines := make([]string, 0, len(routes))
	for _, r := range routes {
		lines = append(lines, r.String())
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// WaitFor blocks until cond holds for the accepted routes or ctx ends.
func (s *Sink) WaitFor(ctx context.Context, cond func([]routing.Route) bool) error {
	for {
		s.mu.Lock()
		ok := cond(slices.Clone(s.routes))
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("routingtest: waiting for routes, have:\n%s: %w", s.String(), ctx.Err())
		case <-ch:
		}
	}
}

// WaitText blocks until the rendered routes equal want or ctx ends.
func (s *Sink) WaitText(ctx context.Context, want string) error {
	return s.WaitFor(ctx, func(rs []routing.Route) bool { return Render(rs) == want })
}
