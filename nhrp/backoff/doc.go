// Package backoff is the project's one capped exponential backoff: a delay
// that starts at a minimum, doubles after each failure and stops growing at
// a maximum. The NHRP engine (registration retransmissions, refusals,
// resolution retries, direct-path probes), the IPsec manager (charon
// reconnects, per-peer load and initiate retries), the kernel (neighbour
// event resubscription), routing (waiting for GoBGP's API) and the
// controller (reconcile retries) all take their delays from here.
//
// The package is pure arithmetic: no clock, no timer, no randomness. A
// caller computes the delay and arms its own timer on its own clock (the
// engine's Clock, the IPsec manager's clock, or time.NewTimer), so tests
// stay deterministic. There is no jitter: no user had any, and the peers
// that retry against one hub are spread by their own start times and the
// registration holding time, not by this package.
//
// It lives under nhrp/ because that tree is the one the boundary test
// (nhrp/boundary_test.go) keeps free of OS code, and because nhrp/engine
// must be able to import it: a package under controller/ or kernel/ would
// make the protocol engine depend on a daemon or OS package. kernel, ipsec,
// routing and controller may import it without a cycle since it imports
// nothing but the standard library's time.
package backoff
