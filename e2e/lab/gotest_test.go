package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

func TestGoTestCommand(t *testing.T) {
	got := goTestCommand("/m/kernel", "/r/gotest/kernel.test", "/r/gotest/kernel.log", []string{"-test.run", "Tunnel$"})
	want := "cd /m/kernel && DMVPND_PRIVILEGED=1 /r/gotest/kernel.test -test.v -test.run 'Tunnel$' > /r/gotest/kernel.log 2>&1; st=$?; cat /r/gotest/kernel.log; exit $st"
	if got != want {
		t.Errorf("goTestCommand =\n%s\nwant\n%s", got, want)
	}
}

// TestGoTestCommandExitStatus runs the rendered command with a fake test
// binary: the exit status must be the binary's, the output captured.
func TestGoTestCommandExitStatus(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "x.test")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"priv=$DMVPND_PRIVILEGED args=$*\"\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	resp := agent.Execute(context.Background(), agent.Request{Cmd: goTestCommand(dir, bin, filepath.Join(dir, "log"), nil)})
	if resp.Exit != 7 || strings.TrimSpace(string(resp.Stdout)) != "priv=1 args=-test.v" {
		t.Errorf("got exit %d stdout %q", resp.Exit, resp.Stdout)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path-1.2": "plain/path-1.2",
		"":               "''",
		"a b":            "'a b'",
		"it's":           `'it'\''s'`,
		"$x":             "'$x'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
		// And the shell agrees.
		out := agent.Execute(context.Background(), agent.Request{Cmd: "printf %s " + shellQuote(in)})
		if string(out.Stdout) != in {
			t.Errorf("sh printed %q for %q", out.Stdout, in)
		}
	}
}
