package nhrp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoOSDependencies enforces the package boundary: nhrp and its
// sub-packages never depend on netlink, VICI, GoBGP, nftables, NFLOG,
// raw sockets or x/sys/unix, and never import os, os/exec or syscall
// directly (they talk to the world through interfaces).
func TestNoOSDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	deps, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/vishvananda/", "github.com/strongswan/govici", "github.com/osrg/gobgp",
		"golang.org/x/sys/unix", "github.com/google/nftables", "github.com/florianl/go-nflog",
		"github.com/mdlayher/packet", "github.com/mdlayher/netlink", "github.com/coreos/go-systemd",
	}
	for _, d := range strings.Fields(string(deps)) {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("nhrp depends on %s", d)
			}
		}
	}
	imports, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(imports)), "\n") {
		pkg, list, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(list) {
			switch imp {
			case "os", "os/exec", "syscall", "unsafe":
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
