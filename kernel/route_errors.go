package kernel

import (
	"fmt"
	"strings"
)

// RouteError is one route the kernel refused (or that could not be
// expressed as a kernel route): SetRoutes skipped it and applied the rest.
type RouteError struct {
	// Op is "replace route" or "delete route".
	Op    string
	Route Route
	Err   error
}

func (e RouteError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, e.Route, e.Err)
}

func (e RouteError) Unwrap() error { return e.Err }

// RouteErrors is SetRoutes' result when some routes failed: every other
// route was installed or pruned. The caller retries the set later (with
// backoff); the failed items are listed so that each is reported once.
type RouteErrors struct {
	Failed []RouteError
}

func (e *RouteErrors) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("kernel: %d route(s) refused: %s", len(e.Failed), strings.Join(parts, "; "))
}

// Unwrap returns the per-route errors, so errors.Is sees each cause.
func (e *RouteErrors) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// routeErrors returns nil for no failures, so that callers can return it
// as an error without a typed-nil trap.
func routeErrors(failed []RouteError) error {
	if len(failed) == 0 {
		return nil
	}
	return &RouteErrors{Failed: failed}
}
