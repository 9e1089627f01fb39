package lab

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
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
