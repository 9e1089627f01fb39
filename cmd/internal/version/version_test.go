package version

import (
	"runtime"
	"testing"
)

func TestText(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3-4-gabcdef0-dirty", "abcdef0123"
	want := "dmvpnd v1.2.3-4-gabcdef0-dirty\ncommit abcdef0123\n" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := Text("dmvpnd"); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestFallback(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "", ""
	// A test binary has no module version and, built by go test, no VCS
	// stamp: the fallbacks apply.
	if got := Version(); got != "dev" {
		t.Errorf("Version = %q, want dev", got)
	}
	if got := Commit(); got == "" {
		t.Error("Commit is empty")
	}
}
