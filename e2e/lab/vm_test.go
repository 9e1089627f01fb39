package lab

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// TestAgentCache: the first lab of a process builds the agent, later ones
// get a hard link to it, and a failed build or a first binary that is gone
// (its run directory pruned) means a new build.
func TestAgentCache(t *testing.T) {
	var builds []string
	fail := true
	c := agentCache{build: func(_ context.Context, _, out string) error {
		builds = append(builds, filepath.Base(out))
		if fail {
			fail = false
			return errors.New("go build failed")
		}
		return os.WriteFile(out, []byte("agent "+filepath.Base(out)), 0o755)
	}}
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	ctx := context.Background()
	if err := c.get(ctx, "", p("a")); err == nil {
		t.Fatal("a failed build was not reported")
	}
	for _, name := range []string{"b", "c"} {
		if err := c.get(ctx, "", p(name)); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(name string) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(p(name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if !os.SameFile(stat("b"), stat("c")) {
		t.Error("c is not a link to b")
	}
	for _, name := range []string{"b", "c"} {
		if err := os.Remove(p(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.get(ctx, "", p("d")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p("d")); err != nil || string(got) != "agent d" {
		t.Errorf("d = %q, %v; want a new build", got, err)
	}
	if want := []string{"a", "b", "d"}; !slices.Equal(builds, want) {
		t.Errorf("builds %v, want %v", builds, want)
	}
}

// TestConnectSlowAgent: an agent whose every answer takes longer than the
// first try's 1 s (a guest on a loaded host) is still reached before the
// boot deadline; a cancel for an abandoned try changes nothing.
func TestConnectSlowAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a slow agent (about 3 s)")
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const delay = 1500 * time.Millisecond
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		dec, enc := json.NewDecoder(conn), json.NewEncoder(conn)
		var mu sync.Mutex
		for {
			var req agent.Request
			if err := dec.Decode(&req); err != nil {
				return
			}
			if req.Cancel {
				continue
			}
			time.AfterFunc(delay, func() {
				mu.Lock()
				defer mu.Unlock()
				_ = enc.Encode(agent.Response{ID: req.ID})
			})
		}
	}()
	v := &vm{cfg: vmConfig{Socket: sock, Console: filepath.Join(t.TempDir(), "console.log")}, exited: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := v.connect(ctx); err != nil {
		t.Fatalf("connect to an agent answering in %v: %v", delay, err)
	}
	defer v.client.Close()
	if took := time.Since(start); took < delay {
		t.Errorf("connected after %v, before the agent's first answer could come (%v)", took, delay)
	}
}

// TestVCPUState: what a failed boot reports of the guest's vCPUs comes
// from a real qemu's monitor (a guest held before its first instruction,
// -S): each vCPU's general and control registers and its instruction
// pointer, without the terminal's escape sequences, prompts or the
// floating point and vector registers.
func TestVCPUState(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip(err) // make deps installs it
	}
	dir := t.TempDir()
	v := &vm{cfg: vmConfig{Monitor: filepath.Join(dir, "monitor.sock")}}
	cmd := exec.Command("qemu-system-x86_64", "-nodefaults", "-nographic", "-S", "-accel", "tcg", "-smp", "2",
		"-monitor", "unix:"+v.cfg.Monitor+",server=on,wait=off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(v.cfg.Monitor); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := v.vcpuState()
	t.Logf("%s", got)
	for _, want := range []string{"\nCPU#0\nEAX=", "\nCPU#1\nEAX=", "\nEIP=0000fff0 ", "\nCR0="} {
		if !strings.Contains(got, want) {
			t.Errorf("vcpuState lacks %q", want)
		}
	}
	if strings.ContainsAny(got, "\x1b\r") || strings.Contains(got, "(qemu)") || strings.Contains(got, "XMM") {
		t.Errorf("vcpuState kept escapes or prompts: %q", got)
	}
}
