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

// checkUnitKeys compares the unit's values (repeated keys joined with
// " | ", "" for a missing key) of the keys of want with want.
func checkUnitKeys(t *testing.T, unit string, want map[string]string) {
	t.Helper()
	k := unitKeys(t, unit)
	got := map[string]string{}
	for key := range want {
		got[key] = strings.Join(k[key], " | ")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", unit, diff)
	}
}

func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/dmvpnd.service"
	want := map[string]string{
		"Type":                     "notify",
		"ExecReload":               "/usr/bin/dmvpnctl --socket /run/dmvpnd/dmvpnd.sock reload --wait",
		"ExecStart":                "/usr/sbin/dmvpnd --config /etc/dmvpnd/dmvpnd.yaml",
		"ExecStartPre":             "", // not restart-protected: the daemon checks at start
		"WatchdogSec":              "30s",
		"RestartPreventExitStatus": "2", // cmd/dmvpnd exitConfig
		"CapabilityBoundingSet":    "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_CHOWN",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"RuntimeDirectory":         "dmvpnd",
	}
	checkUnitKeys(t, unit, want)

	systemdVerify(t, unit)
}

// systemdVerify runs systemd-analyze verify on the units (copied beside
// each other, so that their references resolve), with the binaries they
// run replaced by /bin/true (verify needs them to exist).
func systemdVerify(t *testing.T, units ...string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	var tmps []string
	for _, unit := range units {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, filepath.Base(unit))
		r := strings.NewReplacer("/usr/sbin/dmvpnd", "/bin/true", "/usr/bin/dmvpnctl", "/bin/true", "/usr/lib/ipsec/charon", "/bin/true")
		if err := os.WriteFile(tmp, []byte(r.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
		tmps = append(tmps, tmp)
	}
	if out, err := exec.Command(sa, append([]string{"verify"}, tmps...)...).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdCharonUnit: dmvpnd starts its own charon and survives it: the
// charon unit runs with dmvpnd's strongswan.conf, a private /run (its own
// pid file) with the socket directory bound back, restarts on its own,
// and is tied to dmvpnd only by dmvpnd's Wants/After (a charon restart
// does not stop dmvpnd; a dmvpnd restart does not restart charon).
func TestSystemdCharonUnit(t *testing.T) {
	const unit = "systemd/dmvpnd-charon.service"
	want := map[string]string{
		"Environment":         "STRONGSWAN_CONF=/etc/dmvpnd/strongswan.conf",
		"ExecStart":           "/usr/lib/ipsec/charon",
		"Restart":             "always",
		"RuntimeDirectory":    "dmvpnd-charon", // config.DefaultViciSocket's directory
		"TemporaryFileSystem": "/run",
		"BindPaths":           "/run/dmvpnd-charon",
		"PartOf":              "",
		"BindsTo":             "",
		"Requires":            "",
	}
	checkUnitKeys(t, unit, want)
	checkUnitKeys(t, "systemd/dmvpnd.service", map[string]string{
		"Wants":    "network-online.target dmvpnd-charon.service",
		"After":    "network-online.target dmvpnd-charon.service",
		"Requires": "",
		"BindsTo":  "",
	})
	systemdVerify(t, "systemd/dmvpnd.service", unit)
}
