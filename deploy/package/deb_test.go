package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildBinaries builds both binaries as `make build` does, and this
// command (without the race detector: under it, compressing the package
// took minutes of make test-unit's time; the command-line path is what
// `make package` runs anyway).
func buildBinaries(t *testing.T) (bin, pkg string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/dmvpnd/dmvpnd/cmd/internal/version.version=v1.2.3-4-gabcdef0",
		"-o", bin+"/", "github.com/dmvpnd/dmvpnd/cmd/dmvpnd", "github.com/dmvpnd/dmvpnd/cmd/dmvpnctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pkg = filepath.Join(t.TempDir(), "package")
	cmd = exec.Command("go", "build", "-o", pkg, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./deploy/package: %v\n%s", err, out)
	}
	return bin, pkg
}

// TestDeb builds the package twice from the same binaries, checks that the
// two are byte-identical, looks at what it holds and runs lintian on it.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and the package")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	bin, pkg := buildBinaries(t)
	dir := t.TempDir()
	var debs [2]string
	for i := range debs {
		debs[i] = filepath.Join(dir, string(rune('a'+i))+".deb")
		cmd := exec.Command(pkg, "-bin", bin, "-root", "../..", "-version", "v1.2.3-4-gabcdef0", "-arch", "amd64", "-out", debs[i])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("package: %v\n%s", err, out)
		}
	}
	a, _ := os.ReadFile(debs[0])
	b, _ := os.ReadFile(debs[1])
	if !bytes.Equal(a, b) {
		t.Error("two builds of the package differ")
	}

	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	out, err := exec.Command("dpkg-deb", "-c", debs[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, out)
	}
	for _, want := range []string{
		"./usr/sbin/dmvpnd", "./usr/bin/dmvpnctl", "./lib/systemd/system/dmvpnd.service",
		"./lib/systemd/system/dmvpnd-charon.service", "./etc/dmvpnd/strongswan.conf",
		"./etc/dmvpnd/examples/hub.yaml", "./usr/lib/sysctl.d/60-dmvpnd.conf",
		"./usr/share/man/man8/dmvpnd.8.gz", "./usr/share/man/man8/dmvpnctl.8.gz",
		"./usr/share/man/man5/dmvpnd.yaml.5.gz", "./usr/share/bash-completion/completions/dmvpnctl",
		"./usr/share/zsh/vendor-completions/_dmvpnd", "./usr/share/doc/dmvpnd/copyright",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("package lacks %s", want)
		}
	}
	for field, want := range map[string]string{
		"Version": "1.2.3+4.gabcdef0",
		"Depends": "strongswan-charon, strongswan-swanctl, adduser",
	} {
		got, err := exec.Command("dpkg-deb", "-f", debs[0], field).Output()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s = %q (%v), want %q", field, got, err, want)
		}
	}
	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", debs[0], ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if want := "/etc/dmvpnd/examples/hub.yaml\n/etc/dmvpnd/examples/spoke-nat.yaml\n/etc/dmvpnd/examples/spoke.yaml\n/etc/dmvpnd/strongswan.conf\n"; string(conffiles) != want {
		t.Errorf("conffiles = %q, want %q", conffiles, want)
	}

	if _, err := exec.LookPath("lintian"); err != nil {
		t.Skip("lintian not installed (make deps installs it)")
	}
	// Clean means no error and no warning (lintian's default display);
	// informational tags, such as spelling in vendored libraries' strings,
	// are logged for the record. The overrides shipped in
	// deploy/package/lintian apply.
	out, err = exec.Command("lintian", "--fail-on", "error,warning", "--display-info", "--tag-display-limit", "0", debs[0]).CombinedOutput()
	t.Logf("lintian:\n%s", out)
	if err != nil {
		t.Errorf("lintian reports errors or warnings: %v", err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			t.Errorf("lintian: %s", line)
		}
	}
}
