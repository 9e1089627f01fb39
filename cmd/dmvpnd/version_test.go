package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/cmd/internal/version"
)

func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	rt := &app{stdout: &out, stderr: &errOut}
	if code := rt.execute(context.Background(), []string{"--version"}); code != exitOK {
		t.Fatalf("exit = %d, stderr %q", code, errOut.String())
	}
	want := version.Text("dmvpnd")
	if out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
	if !strings.Contains(out.String(), runtime.Version()) || !strings.Contains(out.String(), "commit ") {
		t.Errorf("--version lacks the Go version or the commit: %q", out.String())
	}
}
