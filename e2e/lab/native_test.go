package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNativeLabProcesses drives the Lab API in native mode without a
// topology: commands, files, background processes and the command log run
// on the host, in the root namespace, touching no network state.
func TestNativeLabProcesses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("native mode needs root")
	}
	l, err := newLab(t, Options{Mode: "native", Modules: []string{}, ResultsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if got := l.MustRun("echo hi"); got != "hi\n" {
		t.Errorf("MustRun = %q", got)
	}
	_, err = l.Run(ctx, "echo bad >&2; exit 4")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Result.Exit != 4 || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Run(exit 4) = %v, want a CommandError with stderr", err)
	}
	f := filepath.Join(l.Scratch(), "sub", "f.txt")
	if err := l.WriteFile(ctx, f, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(f); err != nil || string(b) != "data" {
		t.Errorf("WriteFile wrote %q, %v", b, err)
	}

	root := l.Node("")
	p, err := root.Start(ctx, "sleeper", "sh -c 'echo started; exec sleep 60'")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alive(ctx) {
		t.Fatal("started process is not alive")
	}
	if err := waitReady(ctx, l, p, "grep -q started "+shellQuote(p.Log)); err != nil {
		t.Errorf("waitReady: %v", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Alive(ctx) {
		t.Error("process alive after Stop")
	}
	// A process that dies makes waitReady fail at once, not at its deadline.
	q, err := root.Start(ctx, "quitter", "true")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := waitReady(ctx, l, q, "false"); err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("waitReady on a dead process = %v after %v", err, time.Since(start))
	}
	log, err := os.ReadFile(filepath.Join(l.Dir(), "commands.log"))
	if err != nil || !strings.Contains(string(log), `exit=4 "echo bad >&2; exit 4"`) {
		t.Errorf("commands.log lacks the failed command: %v\n%s", err, log)
	}
}
