package e2e

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBLParseSample(t *testing.T) {
	// Two pids: a command name with a space and a parenthesis, as
	// /proc/PID/stat may carry.
	out := strings.Join([]string{
		"1764662400000000000",
		"stat 812 (dmvpnd) S 1 812 812 0 -1 4194560 3305 0 0 0 150 70 0 0 20 0 9 0 1234 1300000000 10240 18446744073709551615",
		"rss 41000",
		"stat 900 (odd) name) S 1 900 900 0 -1 4194560 3305 0 0 0 5 6 0 0 20 0 9 0 1234 1300000000 10240 18446744073709551615",
		"rss 1000",
	}, "\n")
	got, err := blParseSample(out, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := blSample{at: time.Unix(0, 1764662400000000000), ticks: 150 + 70 + 5 + 6, rss: 42000 << 10}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(blSample{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A pid gone: its lines are missing, which is an error, not zero.
	if _, err := blParseSample(strings.Join(strings.Split(out, "\n")[:3], "\n"), 2); err == nil {
		t.Error("a missing pid parsed without error")
	}
}

func TestBLSampleScript(t *testing.T) {
	got := blSampleScript([]int{7})
	for _, want := range []string{"date +%s%N", "/proc/7/stat", "/proc/7/status", "VmRSS:"} {
		if !strings.Contains(got, want) {
			t.Errorf("script %q lacks %q", got, want)
		}
	}
}

func TestBLMisAcked(t *testing.T) {
	a := netip.MustParseAddr
	acked := map[netip.Addr]netip.Addr{
		a("10.0.1.0"): a("100.64.1.0"), // held
		a("10.0.1.1"): a("100.64.1.1"), // held with another NBMA
		a("10.0.1.2"): a("100.64.1.2"), // absent
		a("10.0.1.3"): a("100.64.1.3"), // entry without lladdr
	}
	table := map[netip.Addr]netip.Addr{
		a("10.0.1.0"): a("100.64.1.0"),
		a("10.0.1.1"): a("100.64.9.9"),
		a("10.0.1.3"): {},
		a("10.0.1.9"): a("100.64.1.9"), // not acked: not counted
	}
	if got := blMisAcked(acked, table); got != 3 {
		t.Errorf("blMisAcked = %d, want 3", got)
	}
}

func TestBLFloorBatch(t *testing.T) {
	got := blFloorBatch(2, netip.MustParseAddr("10.0.1.255"), netip.MustParseAddr("100.64.1.255"))
	want := "neigh add 10.0.1.255 lladdr 100.64.1.255 dev gre1 nud permanent\nneigh add 10.0.2.0 lladdr 100.64.2.0 dev gre1 nud permanent\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestBLCounters(t *testing.T) {
	before := blParseCounters("IpInReceives 10 0.0\nIpInDiscards 0 0.0\nsoftnet 00000001\nsoftnet 00000000\n")
	after := blParseCounters("IpInReceives 25 0.0\nIpInDiscards 0 0.0\nsoftnet 0000000a\nsoftnet 00000001\n")
	want := map[string]int64{"IpInReceives": 25, "IpInDiscards": 0, "SoftnetDropped": 11}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("blParseCounters (-want +got):\n%s", diff)
	}
	if got, want := blCounterDelta(before, after, "Receives", "Drop", "Discard"), "IpInReceives +15, SoftnetDropped +10"; got != want {
		t.Errorf("blCounterDelta = %q, want %q", got, want)
	}
}

// The guest scripts are at least valid shell.
func TestBLScriptsParse(t *testing.T) {
	for name, script := range map[string]string{
		"quiet":    blQuietScript("! true"),
		"sample":   blSampleScript([]int{1, 2}),
		"counters": blCountersScript,
	} {
		if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", name, err, out)
		}
	}
}
