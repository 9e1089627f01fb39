package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
	b, err := os.Stat(p("b"))
	if err != nil {
		t.Fatal(err)
	}
	cst, err := os.Stat(p("c"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(b, cst) {
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
