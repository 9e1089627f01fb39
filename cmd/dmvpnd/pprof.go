package main

import (
	"errors"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// pprofEnv names the environment variable that turns on the profiling
// endpoint: DMVPND_PPROF=127.0.0.1:6060 serves net/http/pprof there, and
// expvar's /debug/vars (runtime.MemStats: bytes allocated, heap in use
// and released, GC count) for sampling the heap cheaply over time. It
// is for measuring the daemon (the lab's bench-lab, docs/bench), not for
// production: only a loopback address is accepted, and unset means no
// listener at all.
const pprofEnv = "DMVPND_PPROF"

// servePprof listens on addr (a loopback host:port) and serves the pprof
// handlers in the background.
func servePprof(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", pprofEnv, addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return errors.New(pprofEnv + ": only a loopback address is accepted")
	}
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return fmt.Errorf("%s: %w", pprofEnv, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
