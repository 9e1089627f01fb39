package main

import (
	"runtime"
	"testing"
)

// TestLimitProcs: without GOMAXPROCS in the environment dmvpnd runs its Go
// code on one processor; with it the runtime's value (the operator's) is
// left alone.
func TestLimitProcs(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })

	runtime.GOMAXPROCS(3)
	procs, byDefault := limitProcs(func(string) string { return "" })
	if procs != 1 || !byDefault || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("no GOMAXPROCS: got %d (default %v), runtime %d; want 1 by default", procs, byDefault, runtime.GOMAXPROCS(0))
	}

	runtime.GOMAXPROCS(3)
	env := map[string]string{procsEnv: "3"}
	procs, byDefault = limitProcs(func(k string) string { return env[k] })
	if procs != 3 || byDefault || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3: got %d (default %v), runtime %d; want 3 from the environment", procs, byDefault, runtime.GOMAXPROCS(0))
	}
}
