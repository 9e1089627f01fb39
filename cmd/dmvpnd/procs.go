package main

import (
	"runtime"
)

// procsEnv is the Go runtime's own variable for the number of threads
// running Go code at once; set, it wins over dmvpnd's default.
const procsEnv = "GOMAXPROCS"

// limitProcs runs dmvpnd's Go code on one processor unless the
// environment sets GOMAXPROCS, and returns the number in force and
// whether it is dmvpnd's default.
//
// dmvpnd's work is one event loop: packets, timers and kernel writes are
// handled in order under one lock, and the expensive part of a
// registration (the neighbour write, the reply through GRE) is kernel
// work done in the calling thread, whatever GOMAXPROCS is. A second
// processor buys no parallel work; it costs a thread wake-up each time
// the runtime preempts the busy loop (every 10 ms) or readies a
// goroutine: the idle processor's thread is woken, looks for work, polls
// the network and sleeps again. In the lab (docs/linux.md, "One
// processor") a 10k registration burst cost 0.315 ms of CPU per
// registration with two and 0.243 ms with one, and reached 10k entries in
// 3.64 s instead of 4.11 s. GoBGP and the IPsec client share the
// processor; an operator whose hub runs large BGP tables can give more
// with GOMAXPROCS in the service's environment.
func limitProcs(getenv func(string) string) (procs int, byDefault bool) {
	if getenv(procsEnv) != "" {
		return runtime.GOMAXPROCS(0), false
	}
	runtime.GOMAXPROCS(1)
	return 1, true
}
