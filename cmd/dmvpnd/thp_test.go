package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestDisableTHP(t *testing.T) {
	if err := disableTHP(); err != nil {
		t.Fatal(err)
	}
	got, err := unix.PrctlRetInt(unix.PR_GET_THP_DISABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != 1 {
		t.Errorf("PR_GET_THP_DISABLE = %d after disableTHP, want 1", got)
	}
}
