package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"go.uber.org/zap"
)

// ctl runs dmvpnctl against socket and returns stdout, stderr and the exit status.
func ctl(t *testing.T, socket string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{out: &out, errOut: &errOut, now: func() time.Time { return apitest.Now },
		client: api.NewClient, pollInterval: time.Millisecond}
	code := run(e, append([]string{"--socket", socket}, args...))
	return out.String(), errOut.String(), code
}

func TestGoldenTables(t *testing.T) {
	fixtures := map[string]apitest.Snapshot{"hub": apitest.HubFixture(), "spoke": apitest.SpokeFixture()}
	commands := [][]string{
		{"show", "dmvpn"},
		{"show", "dmvpn", "detail"},
		{"show", "dmvpn", "peer", "10.0.0.3"},
		{"show", "nhrp", "cache"},
		{"show", "nhrp", "nhs"},
		{"show", "nhrp", "shortcuts"},
		{"show", "ipsec"},
		{"show", "bgp", "summary"},
		{"show", "counters"},
		{"show", "topology"},
		{"show", "qos"},
		{"status"},
	}
	for role, snap := range fixtures {
		sock := apitest.Serve(t, apitest.NewFake(snap))
		for _, args := range commands {
			name := strings.ReplaceAll(strings.Join(args, "_"), ".", "_") + "_" + role
			t.Run(name, func(t *testing.T) {
				out, errOut, code := ctl(t, sock, args...)
				if code != 0 || errOut != "" {
					t.Fatalf("exit %d, stderr %q", code, errOut)
				}
				checkAligned(t, out)
				golden.File(t, name+".golden", out)
			})
		}
	}
}

func TestGoldenEmpty(t *testing.T) {
	sock := apitest.Serve(t, apitest.NewFake(apitest.Snapshot{DMVPN: api.DMVPN{Interface: "gre1", Role: "spoke"}}))
	for _, args := range [][]string{
		{"show", "dmvpn"}, {"show", "nhrp", "cache"}, {"show", "nhrp", "nhs"}, {"show", "nhrp", "shortcuts"},
		{"show", "ipsec"}, {"show", "bgp", "summary"}, {"show", "counters"},
	} {
		name := strings.Join(args, "_") + "_empty"
		t.Run(name, func(t *testing.T) {
			out, errOut, code := ctl(t, sock, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden.File(t, name+".golden", out)
		})
	}
}

func TestGoldenJSON(t *testing.T) {
	sock := apitest.Serve(t, apitest.NewFake(apitest.SpokeFixture()))
	for _, args := range [][]string{{"show", "dmvpn"}, {"show", "ipsec"}, {"show", "dmvpn", "peer", "10.0.0.3"}} {
		name := strings.ReplaceAll(strings.Join(args, "_"), ".", "_") + "_spoke_json"
		t.Run(name, func(t *testing.T) {
			out, errOut, code := ctl(t, sock, append(args, "--json")...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden.File(t, name+".golden", out)
		})
	}
}

// checkAligned verifies that every table's rows start their columns where
// the dashed rule under the titles does.
func checkAligned(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimLeft(l, " "), "---") || strings.Trim(l, "- ") != "" {
			continue
		}
		var starts []int
		for j := range l {
			if l[j] == '-' && (j == 0 || l[j-1] == ' ') {
				starts = append(starts, j)
			}
		}
		for _, row := range lines[i+1:] {
			if row == "" {
				break
			}
			for _, s := range starts[1:] {
				if s > len(row) {
					continue // trailing empty cells are trimmed
				}
				if row[s-1] != ' ' || row[s-2] != ' ' {
					t.Errorf("row %q: no column gap before offset %d", row, s)
				}
			}
		}
		if len(l) != len(strings.TrimRight(l, " ")) {
			t.Errorf("trailing blanks in %q", l)
		}
	}
}

func TestLogLevelCommand(t *testing.T) {
	lvl := zap.NewAtomicLevelAt(zap.InfoLevel)
	sock := apitest.Serve(t, apitest.NewFake(apitest.HubFixture()), api.WithLevel(lvl))
	if out, _, code := ctl(t, sock, "log-level"); code != 0 || out != "Log level: info\n" {
		t.Errorf("log-level = %q, %d", out, code)
	}
	if out, _, code := ctl(t, sock, "log-level", "debug"); code != 0 || out != "Log level: debug\n" || lvl.Level() != zap.DebugLevel {
		t.Errorf("log-level debug = %q, %d, level %s", out, code, lvl.Level())
	}
	if _, errOut, code := ctl(t, sock, "log-level", "loud"); code != 1 || errOut != "dmvpnctl: api: \"loud\" is not debug, info, warn or error\n" {
		t.Errorf("log-level loud = %q, %d", errOut, code)
	}
}
