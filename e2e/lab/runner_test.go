package lab

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

func TestChooseMode(t *testing.T) {
	ok := func() error { return nil }
	noGRE := func() error { return errors.New("no ip_gre") }
	root := os.Geteuid() == 0
	tests := []struct {
		name  string
		want  string
		env   string
		probe func() error
		mode  Mode
		err   bool
	}{
		{"forced vm", "vm", "", ok, ModeVM, false},
		{"forced native", "native", "", noGRE, ModeNative, false},
		{"env vm", "", "vm", ok, ModeVM, false},
		{"env native", "", "NATIVE", noGRE, ModeNative, false},
		{"option beats env", "vm", "native", ok, ModeVM, false},
		{"auto without gre", "", "", noGRE, ModeVM, false},
		{"auto with gre", "auto", "", ok, map[bool]Mode{true: ModeNative, false: ModeVM}[root], false},
		{"bad", "docker", "", ok, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DMVPND_LAB", tc.env)
			got, why, err := chooseMode(tc.want, tc.probe)
			if (err != nil) != tc.err || got != tc.mode {
				t.Errorf("chooseMode(%q) = %q (%s), %v; want %q, err %v", tc.want, got, why, err, tc.mode, tc.err)
			}
		})
	}
}

func TestNativeRunner(t *testing.T) {
	var r Runner = nativeRunner{}
	if r.Mode() != ModeNative {
		t.Errorf("Mode = %q", r.Mode())
	}
	res, err := r.Exec(context.Background(), agent.Request{Cmd: "echo hi; exit 2"})
	if err != nil || res.Exit != 2 || string(res.Stdout) != "hi\n" {
		t.Errorf("Exec = %+v, %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, _ = r.Exec(ctx, agent.Request{Cmd: "sleep 10"})
	if res.Exit == 0 {
		t.Errorf("Exec past deadline = %+v, want a killed command", res)
	}
}

// TestNativeProbeScript checks the probe's shape: it must test GRE and ESP
// inside its own namespace and clean up, and never touch the root namespace.
func TestNativeProbeScript(t *testing.T) {
	for _, want := range []string{"ip netns add", "trap 'ip netns del", "type gre", "proto esp", "rfc4106"} {
		if !strings.Contains(nativeProbeScript, want) {
			t.Errorf("probe script lacks %q", want)
		}
	}
	for _, line := range strings.Split(nativeProbeScript, "\n") {
		if strings.HasPrefix(line, "ip ") && !strings.HasPrefix(line, "ip netns") && !strings.HasPrefix(line, `ip -n "$ns"`) {
			t.Errorf("probe touches the root namespace: %q", line)
		}
	}
}
