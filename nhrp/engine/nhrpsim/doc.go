// Package nhrpsim is an in-memory NBMA network for testing the NHRP engine
// without a kernel: nodes exchange packets through a queue, a shared fake
// clock is stepped by the test (never by sleeping), NAT boxes rewrite the
// outer source of packets leaving them, and an optional IPsec model
// (tunnel mode with the claimed NBMA addresses as inner selectors, as in
// the engine's package documentation) carries packets to peers behind NAT
// once the NATed side has initiated.
package nhrpsim
