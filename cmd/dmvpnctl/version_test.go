package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/cmd/internal/version"
)

func TestVersionFlag(t *testing.T) {
	out, errOut, code := ctl(t, "/nonexistent.sock", "--version")
	if code != 0 {
		t.Fatalf("exit = %d, stderr %q", code, errOut)
	}
	if want := version.Text("dmvpnctl"); out != want {
		t.Errorf("--version printed %q, want %q", out, want)
	}
	if !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "commit ") {
		t.Errorf("--version lacks the Go version or the commit: %q", out)
	}
}
