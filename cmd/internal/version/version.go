// Package version says which build of dmvpnd is running. The Makefile sets
// the version (git describe --tags --always --dirty) and the commit with
// -ldflags "-X"; a plain go build falls back to what the Go toolchain
// recorded (module version, VCS revision) and then to "dev".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time: -X github.com/dmvpnd/dmvpnd/cmd/internal/version.version=...
var (
	version string
	commit  string
)

// Version is the release version, "dev" when unknown.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Commit is the source revision, "unknown" when not recorded.
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Text is what `--version` prints for the program prog.
func Text(prog string) string {
	return fmt.Sprintf("%s %s\ncommit %s\n%s %s/%s\n", prog, Version(), Commit(),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
