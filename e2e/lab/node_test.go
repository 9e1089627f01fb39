package lab

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

func TestNodeWrap(t *testing.T) {
	n := &Node{Name: "hub", NS: "dl1-hub"}
	tests := map[string]string{
		"ping -c 1 10.0.0.2":    "ip netns exec dl1-hub ping -c 1 10.0.0.2",
		"ip xfrm state flush":   "ip netns exec dl1-hub ip xfrm state flush",
		"a && b":                "ip netns exec dl1-hub sh -c 'a && b'",
		"echo $X":               "ip netns exec dl1-hub sh -c 'echo $X'",
		"sysctl -w a.b=1":       "ip netns exec dl1-hub sh -c 'sysctl -w a.b=1'",
		"ip -b - <<EOF\nx\nEOF": "ip netns exec dl1-hub sh -c 'ip -b - <<EOF\nx\nEOF'",
	}
	for in, want := range tests {
		if got := n.wrap(in); got != want {
			t.Errorf("wrap(%q) = %q, want %q", in, got, want)
		}
	}
	root := &Node{}
	if got := root.wrap("a && b"); got != "a && b" {
		t.Errorf("root wrap = %q", got)
	}
}

func TestProcAlive(t *testing.T) {
	run := func(cmd string) int {
		return agent.Execute(context.Background(), agent.Request{Cmd: cmd}).Exit
	}
	if got := run(procAlive(1)); got != 0 {
		t.Errorf("procAlive(1) exit %d, want 0", got)
	}
	if got := run(procAlive(1 << 30)); got == 0 {
		t.Error("procAlive(nonexistent) is true")
	}
	// A zombie: a child that exited and is not reaped by its parent.
	out := agent.Execute(context.Background(), agent.Request{Cmd: "sh -c 'true & sleep 0.3; " + strings.ReplaceAll(procAlive(0), "/0/", "/$!/") + " && echo alive || echo gone'"})
	if strings.TrimSpace(string(out.Stdout)) != "gone" {
		t.Errorf("zombie reported alive: %q %q", out.Stdout, out.Stderr)
	}
}

// TestSignalScript runs Stop's and Kill's scripts against real processes
// of this host: each returns once the process is gone.
func TestSignalScript(t *testing.T) {
	for _, tc := range []struct {
		sig, then string
	}{{"TERM", "exit 3"}, {"KILL", "exit 3"}} {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		p := &Proc{PID: cmd.Process.Pid}
		res := agent.Execute(context.Background(), agent.Request{Cmd: p.signalScript(tc.sig, 50, tc.then)})
		if res.Exit != 0 {
			t.Errorf("SIG%s: exit %d (%q), want 0: the process did not go", tc.sig, res.Exit, res.Stderr)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("SIG%s: sleep %d still runs", tc.sig, p.PID)
			_ = cmd.Process.Kill()
		}
	}
	// A process that is gone already: nothing to signal, exit 0.
	gone := &Proc{PID: 1 << 30}
	if res := agent.Execute(context.Background(), agent.Request{Cmd: gone.signalScript("KILL", 1, "exit 3")}); res.Exit != 0 {
		t.Errorf("absent process: exit %d, want 0", res.Exit)
	}
	// One that outlives the polls runs then.
	if res := agent.Execute(context.Background(), agent.Request{Cmd: (&Proc{PID: os.Getpid()}).signalScript("0", 2, "exit 3")}); res.Exit != 3 {
		t.Errorf("surviving process: exit %d, want 3 (then)", res.Exit)
	}
}
