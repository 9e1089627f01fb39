package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unitKeys parses a unit file into key -> values (repeated keys append).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Errorf("%s: bad line %q", path, l)
			continue
		}
		keys[k] = append(keys[k], v)
	}
	return keys
}

func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/dmvpnd.service"
	k := unitKeys(t, unit)
	want := map[string]string{
		"Type":                     "notify",
		"ExecReload":               "/usr/bin/dmvpnctl --socket /run/dmvpnd/dmvpnd.sock reload",
		"ExecStart":                "/usr/sbin/dmvpnd --config /etc/dmvpnd/dmvpnd.yaml",
		"ExecStartPre":             "", // not restart-protected: the daemon checks at start
		"WatchdogSec":              "30s",
		"RestartPreventExitStatus": "2", // cmd/dmvpnd exitConfig
		"CapabilityBoundingSet":    "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_CHOWN",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"RuntimeDirectory":         "dmvpnd",
	}
	got := map[string]string{}
	for key := range want {
		got[key] = strings.Join(k[key], " | ")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", unit, diff)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// verify needs the binaries to exist: point the unit at /bin/true.
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "dmvpnd.service")
	if err := os.WriteFile(tmp, []byte(strings.NewReplacer("/usr/sbin/dmvpnd", "/bin/true", "/usr/bin/dmvpnctl", "/bin/true").Replace(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", tmp).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
