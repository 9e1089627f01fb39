package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

func TestDumpScript(t *testing.T) {
	s := dumpScript("dl1-hub", "/r/dump/hub.txt")
	for _, c := range dumpCommands {
		if !strings.Contains(s, "ip netns exec dl1-hub "+c+" 2>&1\n") {
			t.Errorf("dump script lacks %q in the namespace:\n%s", c, s)
		}
	}
	if !strings.HasSuffix(s, "} > /r/dump/hub.txt\n") {
		t.Errorf("dump script does not write the file:\n%s", s)
	}
	// Root namespace: the commands run as they are; the script runs and
	// writes its file even where some tools fail.
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "root.txt")
	res := agent.Execute(context.Background(), agent.Request{Cmd: dumpScript("", file)})
	if res.Exit != 0 {
		t.Fatalf("root dump script exit %d: %s", res.Exit, res.Stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "### ip addr show") {
		t.Errorf("dump file lacks section headers:\n%s", b)
	}
}

func TestConsoleTail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "console.log")
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := &vm{cfg: vmConfig{Console: p}}
	got := v.consoleTail(2)
	if !strings.HasSuffix(got, "last lines:\nc\nd") {
		t.Errorf("consoleTail = %q", got)
	}
}
