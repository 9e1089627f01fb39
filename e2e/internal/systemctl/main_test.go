package main

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The units this stand-in must run are the package's.
func TestParseUnits(t *testing.T) {
	for _, tc := range []struct {
		file string
		want map[string][]string
	}{
		{"../../../deploy/systemd/dmvpnd.service", map[string][]string{
			"Type":             {"notify"},
			"ExecStart":        {"/usr/sbin/dmvpnd --config /etc/dmvpnd/dmvpnd.yaml"},
			"ExecReload":       {"/usr/bin/dmvpnctl --socket /run/dmvpnd/dmvpnd.sock reload --wait"},
			"RuntimeDirectory": {"dmvpnd"},
			"Wants":            {"network-online.target dmvpnd-charon.service"},
			"TimeoutStopSec":   {"20s"},
		}},
		{"../../../deploy/systemd/dmvpnd-charon.service", map[string][]string{
			"Type":             {"simple"},
			"ExecStart":        {"/usr/lib/ipsec/charon"},
			"Environment":      {"STRONGSWAN_CONF=/etc/dmvpnd/strongswan.conf"},
			"RuntimeDirectory": {"dmvpnd-charon"},
		}},
	} {
		f, err := os.Open(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		u, err := parseUnit(tc.file, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		for k := range tc.want {
			got[k] = u.props[k]
		}
		if d := cmp.Diff(tc.want, got); d != "" || u.masked {
			t.Errorf("%s (-want +got):\n%s masked %t", tc.file, d, u.masked)
		}
	}
}

func TestParseUnitRepeatsAndMask(t *testing.T) {
	u, err := parseUnit("x", strings.NewReader("[Service]\n# c\nEnvironment=A=1 B=2\nEnvironment=C=3\nWants=a.service\nWants=b.service\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"Environment": {"A=1 B=2", "C=3"}, "Wants": {"a.service", "b.service"}}
	if d := cmp.Diff(want, u.props); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if m, _ := parseUnit("/dev/null", strings.NewReader("")); !m.masked {
		t.Error("an empty unit (a link to /dev/null) is not masked")
	}
}

func TestCommand(t *testing.T) {
	if d := cmp.Diff([]string{"/bin/x", "-a", "b"}, command("-/bin/x  -a b")); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
