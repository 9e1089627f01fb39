package lab

import (
	"strings"
	"testing"
	"time"
)

// TestBoot boots a lab (VM unless forced native) and runs a few commands.
func TestBoot(t *testing.T) {
	start := time.Now()
	l := New(t, Options{})
	t.Logf("boot: %v %v", time.Since(start), l.Timings)
	out := l.MustRun("uname -r; cat /proc/1/comm; test -w " + l.Dir() + " && echo writable")
	t.Logf("guest: %s", out)
	if l.Mode() == ModeVM && !strings.Contains(out, "labagent") {
		t.Errorf("PID 1 is not the agent: %q", out)
	}
	if !strings.Contains(out, "writable") {
		t.Errorf("results dir not writable in the lab")
	}
}
