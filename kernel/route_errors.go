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

func (e *RouteErrors) Error() string { return refusedText("route(s)", e.Failed) }

// Unwrap returns the per-route errors, so errors.Is sees each cause.
func (e *RouteErrors) Unwrap() []error { return asErrors(e.Failed) }

// refusedText is the message of a partial failure (RouteErrors,
// QoSErrors): how many of what the kernel refused, then each failure.
func refusedText[E error](what string, failed []E) string {
	parts := make([]string, len(failed))
	for i, f := range failed {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("kernel: %d %s refused: %s", len(failed), what, strings.Join(parts, "; "))
}

// asErrors is a partial failure's list for Unwrap.
func asErrors[E error](failed []E) []error {
	out := make([]error, len(failed))
	for i, f := range failed {
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
