package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundary proves the engine (and its simulator) pull in no OS
// integration: no netlink, VICI, GoBGP or x/sys/unix anywhere in the
// dependency closure.
func TestImportBoundary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	for _, pkg := range []string{".", "./nhrpsim"} {
		out, err := exec.Command(gobin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s returned only %d packages: %q", pkg, len(deps), deps)
		}
		for _, d := range deps {
			for _, bad := range []string{"netlink", "govici", "gobgp", "golang.org/x/sys/unix", "nftables", "nflog"} {
				if strings.Contains(d, bad) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
		out, err = exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		for _, d := range strings.Fields(string(out)) {
			if !strings.HasPrefix(d, "github.com/dmvpnd/dmvpnd/nhrp") && !strings.HasPrefix(d, "go.uber.org/") {
				t.Errorf("%s depends on %s, outside the standard library, nhrp and zap", pkg, d)
			}
		}
	}
}
